#include "analysis/analyze.h"

#include <chrono>
#include <cmath>

#include "analysis/map_similarity.h"
#include "analysis/value_spectrum.h"
#include "autograd/tape.h"
#include "core/error.h"
#include "data/loader.h"
#include "infer/evaluate.h"

namespace gta::analysis {

namespace {

// An M x M row-major matrix as nested JSON arrays.
nlohmann::json matrix_json(const std::vector<double>& m, int64_t n) {
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t a = 0; a < n; ++a) rows.push_back(std::vector<double>(m.begin() + a * n, m.begin() + (a + 1) * n));
  return rows;
}

nlohmann::json spectrum_json(const Spectrum& s) {
  return {{"singular_values", s.normalized}, {"s_max", s.s_max}, {"n90", s.n90}, {"n99", s.n99}, {"rank", s.rank}};
}

nlohmann::json definitions() {
  return {
      {"map", "P_a[t,u] = softmax_u(scale * q_a[t] . k_{a/(maps/key_heads)}[u]) over u <= t, after RoPE; maps: "
              "the h query heads (MHA, GQA, MQA, MLA) or the n_q maps (GVA, GHA, GTA)"},
      {"map_cosine", "mean over windows and query positions t = 0..T-1 of cos(P_a[t,:], P_b[t,:])"},
      {"map_js_bits", "mean over windows and query positions t = 0..T-1 of the Jensen-Shannon divergence of "
                      "P_a[t,:] and P_b[t,:] in bits (0 = same row, 1 = disjoint)"},
      {"offdiag_mean", "mean of the maps*(maps-1) off-diagonal entries; null with one map"},
      {"value_cache", "X [tokens, columns]: the value entry of the KV cache of every analysed token (V heads side "
                      "by side; GTA's value latent; MLA's compressed latent c), not centered"},
      {"singular_values", "singular values of X divided by the largest (s_max), descending; from the eigenvalues "
                          "of X^T X (LAPACK dsyevd), exact to about 1e-7 s_max"},
      {"n90_n99", "fewest leading components holding 90% / 99% of sum_i s_i^2"},
      {"rank", "number of singular values > 1e-6 s_max"},
      {"centered", "the same for X minus its mean row (how the values spread around the mean); the precision "
                   "floor is that of the uncentered X"}};
}

}  // namespace

void AnalyzeOptions::validate() const {
  GTA_CHECK(windows >= 1, "--windows must be >= 1, got {}", windows);
  GTA_CHECK(seq_len >= 1, "--seq-len must be >= 1, got {}", seq_len);
}

size_t value_entry(const std::vector<nn::CacheEntry>& layout) {
  for (size_t i = 0; i < layout.size(); ++i)
    if (layout[i].name == "v" || layout[i].name == "latent") return i;
  fail("the KV cache layout has no value entry (\"v\" or \"latent\")");
}

nlohmann::json analyze(const nn::Model& model, const std::vector<std::string>& shard_specs, const AnalyzeOptions& opt) {
  opt.validate();
  const auto t0 = std::chrono::steady_clock::now();
  data::LoaderOptions lo;
  lo.seq_len = opt.seq_len;
  lo.batch_size = 1;
  lo.mode = data::SampleMode::Sequential;
  lo.prefetch = false;
  lo.vocab_limit = model.config().vocab_size;  // every token read is checked against the model
  data::DataLoader loader(shard_specs, lo);
  infer::check_shards_fit(loader, lo.vocab_limit, opt.tokenizer_sha256);
  const int64_t windows = std::min<int64_t>(opt.windows, static_cast<int64_t>(loader.n_windows()));
  const int64_t T = opt.seq_len;

  const auto layout = model.cache_layout();
  const int n_layers = static_cast<int>(layout.size());
  std::vector<MapSimilarity> maps(n_layers);
  std::vector<ValueSpectrum> values;
  std::vector<size_t> value_index;
  for (const auto& entries : layout) {
    value_index.push_back(value_entry(entries));
    const nn::CacheEntry& e = entries[value_index.back()];
    values.emplace_back(e.heads * e.width);
  }
  const Device dev = model.params().device();
  autograd::NoGradGuard no_grad;
  nn::KVCache cache = model.make_cache(1, T);
  const nn::LayerMapProbe probe = [&maps](int layer, const Tensor& q, const Tensor& k, double scale) {
    maps[layer].add(q, k, scale);
  };
  std::vector<int32_t> window(static_cast<size_t>(T + 1));
  for (int64_t w = 0; w < windows; ++w) {
    loader.read_window(static_cast<uint64_t>(w), window.data());
    window.pop_back();  // the T inputs; the last token is only a target
    cache.reset();
    model.forward(Tensor::from_vector(window, {1, T}).to(dev), &cache, &probe);
    window.resize(static_cast<size_t>(T + 1));
    for (int l = 0; l < n_layers; ++l)
      values[l].add(cache.layer(l).buffers[value_index[l]].slice(1, 0, T).reshape({T, values[l].width()}));
  }

  nlohmann::json j;
  j["attention"] = model.config().attention.type;
  j["model"] = config::to_json(model.config());
  j["windows"] = windows;
  j["seq_len"] = T;
  j["tokens"] = windows * T;
  j["shards"] = loader.files();
  j["definitions"] = definitions();
  j["layers"] = nlohmann::json::array();
  for (int l = 0; l < n_layers; ++l) {
    const int64_t M = maps[l].maps();
    const std::vector<double> cos = maps[l].cosine(), js = maps[l].js_bits();
    const nn::CacheEntry& e = layout[l][value_index[l]];
    nlohmann::json value_cache = {{"entry", e.name},
                                  {"heads", e.heads},
                                  {"width", e.width},
                                  {"columns", values[l].width()},
                                  {"rows", values[l].rows()}};
    value_cache.update(spectrum_json(values[l].spectrum()));
    value_cache["centered"] = spectrum_json(values[l].centered_spectrum());
    j["layers"].push_back({{"layer", l},
                           {"maps", M},
                           {"key_heads", maps[l].key_heads()},
                           {"map_cosine", matrix_json(cos, M)},
                           {"map_cosine_offdiag_mean", MapSimilarity::off_diagonal_mean(cos, M)},
                           {"map_js_bits", matrix_json(js, M)},
                           {"map_js_bits_offdiag_mean", MapSimilarity::off_diagonal_mean(js, M)},
                           {"value_cache", value_cache}});
  }
  j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return j;
}

}  // namespace gta::analysis
