// gta analyze's measurements: attention-map similarity against a direct computation (causal
// maps, cached prefix, several query blocks), its properties (diagonal 1, symmetric, in [0, 1]),
// identical heads giving similarity 1; the probe on every attention type (one call per layer, the
// right number of maps, logits unchanged); value-cache spectra of known singular values (also
// centered) and of a known rank; analyze() over shards, and its errors; finding the plot script.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "analysis/analyze.h"
#include "analysis/map_similarity.h"
#include "analysis/value_spectrum.h"
#include "autograd/tape.h"
#include "cli/python_script.h"
#include "core/rng.h"
#include "data/shard.h"
#include "test_models.h"
#include "test_util.h"

namespace {

using gta::DType;
using gta::Tensor;
using gta::analysis::MapSimilarity;
using gta::analysis::ValueSpectrum;
using gta::nn::Model;
using gta_test::random_ids;
using gta_test::randomize;
using gta_test::small_config;
using gta_test::TempDir;
using V = std::vector<double>;

Tensor random_tensor(const gta::Shape& shape, uint64_t seed, double std = 1.0) {
  gta::Rng rng(seed);
  V v(static_cast<size_t>(gta::shape_numel(shape)));
  for (double& x : v) x = std * rng.normal();
  return Tensor::from_doubles(v, shape, DType::f64);
}

// The maps of q [B, T, M, d], k [B, S, nk, d] written out: P[b][a][t] is row t of map a.
std::vector<std::vector<std::vector<V>>> direct_maps(const Tensor& q, const Tensor& k, double scale) {
  const int64_t B = q.size(0), T = q.size(1), M = q.size(2), d = q.size(3), S = k.size(1), nk = k.size(2);
  const V qv = q.to_doubles(), kv = k.to_doubles();
  std::vector<std::vector<std::vector<V>>> P(B, std::vector<std::vector<V>>(M, std::vector<V>(T, V(S, 0.0))));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t a = 0; a < M; ++a)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t pos = S - T + t;
        double z = 0;
        for (int64_t u = 0; u <= pos; ++u) {
          double s = 0;
          for (int64_t i = 0; i < d; ++i)
            s += qv[((b * T + t) * M + a) * d + i] * kv[((b * S + u) * nk + a / (M / nk)) * d + i];
          P[b][a][t][u] = std::exp(scale * s);
          z += P[b][a][t][u];
        }
        for (double& p : P[b][a][t]) p /= z;
      }
  return P;
}

// Mean over rows of the cosine and of the JS divergence (bits) of every pair of maps.
void direct_similarity(const Tensor& q, const Tensor& k, double scale, V& cos, V& js) {
  const auto P = direct_maps(q, k, scale);
  const int64_t B = q.size(0), T = q.size(1), M = q.size(2), S = k.size(1);
  cos.assign(M * M, 0.0);
  js.assign(M * M, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t a = 0; a < M; ++a)
        for (int64_t c = 0; c < M; ++c) {
          const V &p = P[b][a][t], &r = P[b][c][t];
          double dot = 0, pp = 0, rr = 0, kl = 0;
          for (int64_t u = 0; u < S; ++u) {
            dot += p[u] * r[u], pp += p[u] * p[u], rr += r[u] * r[u];
            const double m = (p[u] + r[u]) / 2;
            if (p[u] > 0) kl += p[u] * std::log2(p[u] / m);
            if (r[u] > 0) kl += r[u] * std::log2(r[u] / m);
          }
          cos[a * M + c] += dot / std::sqrt(pp * rr) / double(B * T);
          js[a * M + c] += kl / 2 / double(B * T);
        }
}

void expect_near_all(const V& got, const V& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "entry " << i;
}

TEST(MapSimilarity, MatchesDirectComputation) {
  struct Case {
    int64_t B, T, S, M, nk, d;
    double scale;
  };
  // Queries after a cached prefix (S > T); more rows than one block (64); one key head per map.
  for (const Case& c : {Case{2, 7, 9, 4, 2, 5, 0.7}, Case{1, 70, 70, 3, 1, 4, 0.9}, Case{1, 5, 5, 2, 2, 3, 1.3}}) {
    SCOPED_TRACE("T " + std::to_string(c.T) + ", S " + std::to_string(c.S) + ", maps " + std::to_string(c.M));
    const Tensor q = random_tensor({c.B, c.T, c.M, c.d}, 1), k = random_tensor({c.B, c.S, c.nk, c.d}, 2);
    MapSimilarity sim;
    sim.add(q, k, c.scale);
    V cos, js;
    direct_similarity(q, k, c.scale, cos, js);
    expect_near_all(sim.cosine(), cos, 1e-12);
    expect_near_all(sim.js_bits(), js, 1e-12);
    EXPECT_EQ(sim.maps(), c.M);
    EXPECT_EQ(sim.key_heads(), c.nk);
    EXPECT_EQ(sim.rows(), c.B * c.T);
  }
}

TEST(MapSimilarity, MeansOverEveryAddedRow) {
  const Tensor q1 = random_tensor({1, 6, 3, 4}, 3), k1 = random_tensor({1, 6, 1, 4}, 4);
  const Tensor q2 = random_tensor({2, 9, 3, 4}, 5), k2 = random_tensor({2, 9, 1, 4}, 6);
  MapSimilarity sim;
  sim.add(q1, k1, 0.5);
  sim.add(q2.to(DType::f32), k2.to(DType::f32), 0.5);  // any float dtype
  V c1, j1, c2, j2;
  direct_similarity(q1, k1, 0.5, c1, j1);
  direct_similarity(q2.to(DType::f32).to(DType::f64), k2.to(DType::f32).to(DType::f64), 0.5, c2, j2);
  V cos(c1.size()), js(j1.size());
  for (size_t i = 0; i < cos.size(); ++i) {
    cos[i] = (6 * c1[i] + 18 * c2[i]) / 24;
    js[i] = (6 * j1[i] + 18 * j2[i]) / 24;
  }
  EXPECT_EQ(sim.rows(), 24);
  expect_near_all(sim.cosine(), cos, 1e-12);
  expect_near_all(sim.js_bits(), js, 1e-12);
  // A layer whose map count changes between calls is an error.
  EXPECT_ERROR_HAS(sim.add(random_tensor({1, 6, 2, 4}, 7), k1, 0.5), "2 maps over 1 key heads, earlier 3 over 1");
  EXPECT_ERROR_HAS(sim.add(q1, random_tensor({1, 6, 2, 4}, 8), 0.5), "key heads (2) must divide maps (3)");
}

TEST(MapSimilarity, DiagonalOneSymmetricAndBounded) {
  MapSimilarity sim;
  sim.add(random_tensor({2, 33, 6, 8}, 9, 2.0), random_tensor({2, 33, 3, 8}, 10, 2.0), 0.35);
  const V cos = sim.cosine(), js = sim.js_bits();
  const int64_t M = 6;
  for (int64_t a = 0; a < M; ++a) {
    EXPECT_NEAR(cos[a * M + a], 1.0, 1e-12);
    EXPECT_NEAR(js[a * M + a], 0.0, 1e-12);
    for (int64_t b = 0; b < M; ++b) {
      EXPECT_EQ(cos[a * M + b], cos[b * M + a]);
      EXPECT_EQ(js[a * M + b], js[b * M + a]);
      EXPECT_GE(cos[a * M + b], 0.0);
      EXPECT_LE(cos[a * M + b], 1.0 + 1e-12);
      EXPECT_GE(js[a * M + b], -1e-12);
      EXPECT_LE(js[a * M + b], 1.0);
    }
  }
  // Random maps are not alike: the test below could not pass by accident.
  EXPECT_LT(MapSimilarity::off_diagonal_mean(cos, M), 0.95);
  EXPECT_GT(MapSimilarity::off_diagonal_mean(js, M), 0.01);
  EXPECT_TRUE(std::isnan(MapSimilarity::off_diagonal_mean({1.0}, 1)));
}

// Feeds every layer's maps of one forward into one MapSimilarity per layer.
std::vector<MapSimilarity> layer_similarities(const Model& m, const Tensor& tokens) {
  std::vector<MapSimilarity> sims(m.config().n_layers);
  const gta::nn::LayerMapProbe probe = [&](int l, const Tensor& q, const Tensor& k, double s) { sims[l].add(q, k, s); };
  gta::autograd::NoGradGuard ng;
  m.forward(tokens, nullptr, &probe);
  return sims;
}

TEST(MapSimilarity, HeadsWithIdenticalQueryAndKeyWeightsGiveOne) {
  Model m(small_config("mha"), DType::f64, 1);
  randomize(m, 2);
  const Tensor tokens = gta_test::random_tokens(2, 19, 37, 3);
  // Distinct heads first: their maps differ, so the check below can fail.
  for (const MapSimilarity& s : layer_similarities(m, tokens))
    EXPECT_LT(MapSimilarity::off_diagonal_mean(s.cosine(), s.maps()), 0.99);
  // Copy head 0's rows of q_proj and k_proj to every head: 4 identical maps per layer.
  const int64_t hd = 48 / 4;
  for (int l = 0; l < 2; ++l)
    for (const char* proj : {"q_proj", "k_proj"}) {
      Tensor w = m.params().get("model.layers." + std::to_string(l) + ".self_attn." + proj + ".weight");
      double* p = w.data<double>();
      for (int64_t h = 1; h < 4; ++h)
        std::copy(p, p + hd * 48, p + h * hd * 48);
    }
  for (const MapSimilarity& s : layer_similarities(m, tokens)) {
    EXPECT_NEAR(MapSimilarity::off_diagonal_mean(s.cosine(), s.maps()), 1.0, 1e-12);
    EXPECT_NEAR(MapSimilarity::off_diagonal_mean(s.js_bits(), s.maps()), 0.0, 1e-12);
  }
}

class AnalysisAllTypes : public ::testing::TestWithParam<std::string> {};

// The probe sees each layer once with the type's maps and key heads, and changes nothing.
TEST_P(AnalysisAllTypes, ProbeSeesEveryLayersMaps) {
  const std::string type = GetParam();
  Model m(small_config(type), DType::f64, 4);
  randomize(m, 5);
  const auto& cfg = m.config();
  const auto& a = cfg.attention;
  int64_t maps = cfg.n_heads, key_heads = cfg.n_heads;  // mha; mla: h heads of their own keys
  if (type == "gqa") key_heads = a.n_kv_heads;
  if (type == "mqa") key_heads = 1;
  if (type == "gva" || type == "gha" || type == "gta") maps = a.n_q_heads, key_heads = a.n_k_heads;
  const Tensor tokens = gta_test::random_tokens(1, 11, 37, 6);
  std::vector<int> seen;
  const gta::nn::LayerMapProbe probe = [&](int l, const Tensor& q, const Tensor& k, double) {
    seen.push_back(l);
    EXPECT_EQ(q.size(2), maps);
    EXPECT_EQ(k.size(2), key_heads);
    EXPECT_EQ(q.size(1), 11);
  };
  gta::autograd::NoGradGuard ng;
  const Tensor plain = m.forward(tokens);
  EXPECT_TRUE(gta_test::bits_equal(m.forward(tokens, nullptr, &probe), plain));
  EXPECT_EQ(seen, (std::vector<int>{0, 1}));

  // The value entry of the cache: V heads, GTA's value latent, MLA's compressed latent.
  const auto layout = m.cache_layout();
  const gta::nn::CacheEntry& e = layout[0][gta::analysis::value_entry(layout[0])];
  if (type == "gta") {
    EXPECT_EQ(e.name, "latent");
    EXPECT_EQ(e.heads * e.width, a.n_v_heads * a.d_latent);
  } else if (type == "mla") {
    EXPECT_EQ(e.name, "latent");
    EXPECT_EQ(e.heads * e.width, a.d_c);
  } else {
    EXPECT_EQ(e.name, "v");
    EXPECT_EQ(e.width, cfg.d_model / cfg.n_heads);
  }
}

INSTANTIATE_TEST_SUITE_P(Analysis, AnalysisAllTypes, ::testing::ValuesIn(gta::config::attention_types()),
                         [](const auto& info) { return info.param; });

// X [N, 4] = rows s_i * (R e_i) for an orthogonal R (two plane rotations), then zero rows: its
// singular values are exactly s.
Tensor rows_with_singular_values(const V& s, int64_t zero_rows) {
  const double c1 = std::cos(0.3), s1 = std::sin(0.3), c2 = std::cos(1.1), s2 = std::sin(1.1);
  // R = rotation of axes (0, 1) by 0.3, then of axes (1, 3) by 1.1.
  const double R[4][4] = {{c1, -s1, 0, 0}, {s1 * c2, c1 * c2, 0, -s2}, {0, 0, 1, 0}, {s1 * s2, c1 * s2, 0, c2}};
  V x;
  for (size_t i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) x.push_back(s[i] * R[j][i]);  // row i = s_i * column i of R
  x.resize(x.size() + static_cast<size_t>(zero_rows * 4), 0.0);
  return Tensor::from_doubles(x, {4 + zero_rows, 4}, DType::f64);
}

TEST(ValueSpectrum, KnownSingularValuesAndEnergyCounts) {
  const Tensor x = rows_with_singular_values({4, 2, 1, 0.5}, 3);
  ValueSpectrum vs(4);
  vs.add(x.slice(0, 0, 2));  // rows arrive in pieces
  vs.add(x.slice(0, 2, 7));
  const auto s = vs.spectrum();
  EXPECT_EQ(vs.rows(), 7);
  EXPECT_NEAR(s.s_max, 4.0, 1e-12);
  expect_near_all(s.normalized, {1.0, 0.5, 0.25, 0.125}, 1e-7);
  // Energies 16, 4, 1, 0.25 of 21.25: 90% (19.125) needs 2, 99% (21.0375) needs all 4.
  EXPECT_EQ(s.n90, 2);
  EXPECT_EQ(s.n99, 4);
  EXPECT_EQ(s.rank, 4);
  EXPECT_ERROR_HAS(vs.add(Tensor::zeros({3, 5}, DType::f64)), "expected rows [N, 4]");
}

TEST(ValueSpectrum, CenteredSpectrumRemovesTheMeanRow) {
  // Y: rows +-s_i (R e_i), column means 0, singular values sqrt(2) s; X = Y + a constant row.
  const V y = rows_with_singular_values({3, 1, 0.3, 0.1}, 0).to_doubles();
  const V offset = {5, -2, 7, 1};
  V x;
  for (double sign : {1.0, -1.0})
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) x.push_back(sign * y[i * 4 + j] + offset[j]);
  ValueSpectrum vs(4);
  vs.add(Tensor::from_doubles(x, {8, 4}, DType::f64));
  const auto c = vs.centered_spectrum();
  EXPECT_NEAR(c.s_max, 3 * std::sqrt(2.0), 1e-9);
  expect_near_all(c.normalized, {1.0, 1 / 3.0, 0.1, 1 / 30.0}, 1e-7);
  EXPECT_EQ(c.rank, 4);
  // Uncentered, the offset row dominates: s_1 is about |offset| sqrt(8).
  const auto u = vs.spectrum();
  EXPECT_GT(u.s_max, 20.0);
  EXPECT_EQ(u.n90, 1);
}

TEST(ValueSpectrum, RankOfALowRankCache) {
  // X = A B with A [50, 3], B [3, 8]: rank 3 of 8 columns.
  const Tensor A = random_tensor({50, 3}, 11), B = random_tensor({3, 8}, 12);
  const V a = A.to_doubles(), b = B.to_doubles();
  V x(50 * 8, 0.0);
  for (int i = 0; i < 50; ++i)
    for (int j = 0; j < 8; ++j)
      for (int r = 0; r < 3; ++r) x[i * 8 + j] += a[i * 3 + r] * b[r * 8 + j];
  ValueSpectrum vs(8);
  vs.add(Tensor::from_doubles(x, {50, 8}, DType::f64));
  const auto s = vs.spectrum();
  EXPECT_EQ(s.rank, 3);
  for (int i = 0; i < 3; ++i) EXPECT_GT(s.normalized[i], 1e-3);
  for (int i = 3; i < 8; ++i) EXPECT_LT(s.normalized[i], 1e-6);
  EXPECT_LE(s.n99, 3);
  // An all-zero cache: no energy, rank 0.
  ValueSpectrum zero(3);
  zero.add(Tensor::zeros({4, 3}, DType::f64));
  const auto z = zero.spectrum();
  EXPECT_EQ(z.rank, 0);
  EXPECT_EQ(z.n90, 0);
  EXPECT_EQ(z.s_max, 0);
}

TEST(Analyze, OverShardsAndItsErrors) {
  Model m(small_config("gqa"), DType::f32, 7);
  randomize(m, 8);
  const TempDir tmp;
  const std::string val = tmp / "val.h5";
  gta::data::write_shard(val, random_ids(100, 37, 1), 37, "abc123", 300);
  gta::analysis::AnalyzeOptions o;
  o.windows = 3;
  o.seq_len = 16;
  const auto j = gta::analysis::analyze(m, {val}, o);
  EXPECT_EQ(j["attention"], "gqa");
  EXPECT_EQ(j["windows"], 3);
  EXPECT_EQ(j["seq_len"], 16);
  EXPECT_EQ(j["tokens"], 48);
  ASSERT_EQ(j["layers"].size(), 2u);
  for (const auto& l : j["layers"]) {
    EXPECT_EQ(l["maps"], 6);
    EXPECT_EQ(l["key_heads"], 2);
    EXPECT_EQ(l["map_cosine"].size(), 6u);
    const auto& v = l["value_cache"];
    EXPECT_EQ(v["entry"], "v");
    EXPECT_EQ(v["columns"], 2 * 8);  // 2 value heads of 48 / 6
    EXPECT_EQ(v["rows"], 48);
    EXPECT_EQ(v["singular_values"].size(), 16u);
    EXPECT_EQ(v["singular_values"][0], 1.0);
    EXPECT_GE(v["n99"].get<int64_t>(), v["n90"].get<int64_t>());
    EXPECT_EQ(v["centered"]["singular_values"].size(), 16u);
    EXPECT_GT(l["map_cosine_offdiag_mean"].get<double>(), 0.0);
  }
  EXPECT_TRUE(j["definitions"].contains("map_cosine"));
  // More windows than the shards hold (floor(99 / 16) = 6): all of them.
  o.windows = 50;
  EXPECT_EQ(gta::analysis::analyze(m, {val}, o)["windows"], 6);

  o.windows = 0;
  EXPECT_ERROR_HAS(gta::analysis::analyze(m, {val}, o), "--windows must be >= 1");
  o.windows = 2;
  o.seq_len = 0;
  EXPECT_ERROR_HAS(gta::analysis::analyze(m, {val}, o), "--seq-len must be >= 1");
  o.seq_len = 100;
  EXPECT_ERROR_HAS(gta::analysis::analyze(m, {val}, o), "val.h5 has 100 tokens, fewer than seq_len + 1 = 101");
  o.seq_len = 16;
  EXPECT_ERROR_HAS(gta::analysis::analyze(m, {tmp / "missing.h5"}, o), "missing.h5");
  o.tokenizer_sha256 = "def456";
  EXPECT_ERROR_HAS(gta::analysis::analyze(m, {val}, o), "tokenizer abc123", "model's tokenizer is def456");
  o.tokenizer_sha256.clear();
  const std::string big = tmp / "big_vocab.h5";
  gta::data::write_shard(big, random_ids(100, 37, 1), 1000, "", 300);
  EXPECT_ERROR_HAS(gta::analysis::analyze(m, {big}, o), "vocabulary size 1000", "the model has 37");
}

// The plots' script is found from the binary's source tree; a missing script or a Python without
// the modules it needs is a clear error, not a crash or a silent skip.
TEST(PythonScript, FindsScriptsAndNamesWhatIsMissing) {
  EXPECT_NE(gta::cli::find_script("plot_analysis.py").find("scripts/plot_analysis.py"), std::string::npos);
  EXPECT_ERROR_HAS(gta::cli::find_script("no_such_script.py"), "scripts/no_such_script.py not found");
  EXPECT_ERROR_HAS(gta::cli::run_python_script("plot_analysis.py", {"x.json"}, {"no_such_module_for_gta"}),
                   "plot_analysis.py needs a python3 that can `import no_such_module_for_gta`", "apt install");
}

}  // namespace
