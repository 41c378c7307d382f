// Inference: KV-cached decoding against the uncached forward for every attention type (f64 to
// 1e-10, f32 to ~1e-5; one-shot, chunked and token-by-token prefill), KV-cache sizes against the
// config's closed form, greedy generation against an uncached reference, batched generation,
// EOS stops, the sampler (greedy ties, temperature, top-k, top-p, vocab limit, frequencies,
// determinism, bad options), evaluation (loss / perplexity / bits per byte over shard sets
// against a direct computation) and checkpoint resolution and loading.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <sys/wait.h>

#include "autograd/tape.h"
#include "config/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "infer/evaluate.h"
#include "infer/generate.h"
#include "infer/sampler.h"
#include "infer/tokenizer_lookup.h"
#include "io/safetensors.h"
#include "nn/model.h"
#include "optim/adamw.h"
#include "test_models.h"
#include "test_util.h"
#include "train/checkpoint.h"

namespace {

namespace fs = std::filesystem;
using gta::DType;
using gta::Rng;
using gta::Tensor;
using gta::config::ModelConfig;
using gta::nn::Model;
using V = std::vector<double>;
using gta_test::error_of;
using gta_test::randomize;
using gta_test::small_config;
using gta_test::random_ids;
using gta_test::random_tokens;
using gta_test::read_file;
using gta_test::TempDir;
using gta_test::write_file;

// max |a - b| over logits [B, t1 - t0, V] of `got` and positions t0..t1-1 of `full`.
double max_diff(const Tensor& got, const Tensor& full, int64_t t0, int64_t t1) {
  V g = got.to_doubles(), f = full.slice(1, t0, t1).to_doubles();
  EXPECT_EQ(g.size(), f.size());
  double m = 0;
  for (size_t i = 0; i < g.size() && i < f.size(); ++i) m = std::max(m, std::abs(g[i] - f[i]));
  return m;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double x : t.to_doubles()) m = std::max(m, std::abs(x));
  return m;
}

class InferAllTypes : public ::testing::TestWithParam<std::string> {};

// The key property: cached decoding reproduces the uncached forward at every position.
TEST_P(InferAllTypes, CachedDecodeMatchesFullForward) {
  const ModelConfig cfg = small_config(GetParam());
  for (DType dt : {DType::f64, DType::f32}) {
    SCOPED_TRACE(gta::dtype_name(dt));
    Model m(cfg, dt, 7);
    randomize(m, 11);
    gta::autograd::NoGradGuard ng;
    const int64_t B = 2, T = 13, P = 4;
    Tensor tokens = random_tokens(B, T, cfg.vocab_size, 3);
    Tensor full = m.forward(tokens);
    const double scale = std::max(1.0, max_abs(full));
    const double tol = dt == DType::f64 ? 1e-10 : 5e-6 * scale;  // f32: about 1e-5 relative
    ASSERT_GT(scale, 0.5) << "logits too small for a meaningful comparison";

    // Prefill P tokens at once, then one token per step.
    gta::nn::KVCache cache = m.make_cache(B, T);
    EXPECT_EQ(cache.bytes(),
              cfg.n_layers * cfg.kv_cache_elems_per_token_per_layer() * B * T * int64_t(gta::dtype_size(dt)));
    EXPECT_LE(max_diff(m.forward(tokens.slice(1, 0, P).contiguous(), &cache), full, 0, P), tol);
    EXPECT_EQ(cache.len(), P);
    for (int64_t t = P; t < T; ++t) {
      SCOPED_TRACE("decode position " + std::to_string(t));
      EXPECT_LE(max_diff(m.forward(tokens.slice(1, t, t + 1).contiguous(), &cache), full, t, t + 1), tol);
    }
    EXPECT_EQ(cache.len(), T);
    // The cache is full: one more token is an error, not a silent overwrite.
    EXPECT_THROW(m.forward(tokens.slice(1, 0, 1).contiguous(), &cache), gta::Error);

    // Prefill in uneven chunks (reusing the cache after reset()).
    cache.reset();
    int64_t t0 = 0;
    for (int64_t len : {3, 1, 5, 2, 2}) {
      SCOPED_TRACE("chunk at " + std::to_string(t0));
      EXPECT_LE(max_diff(m.forward(tokens.slice(1, t0, t0 + len).contiguous(), &cache), full, t0, t0 + len), tol);
      t0 += len;
    }
    EXPECT_EQ(t0, T);

    // A cache that starts with room for one token grows (doubling) as it fills, same logits.
    gta::nn::KVCache grown = m.make_cache(B, T, 1);
    EXPECT_EQ(grown.bytes(), cache.bytes() / T);
    t0 = 0;
    for (int64_t len : {3, 1, 5, 2, 2}) {
      SCOPED_TRACE("growing cache, chunk at " + std::to_string(t0));
      EXPECT_LE(max_diff(m.forward(tokens.slice(1, t0, t0 + len).contiguous(), &grown), full, t0, t0 + len), tol);
      t0 += len;
    }
    EXPECT_EQ(grown.bytes(), cache.bytes());  // capped at max_len
    EXPECT_THROW(m.forward(tokens.slice(1, 0, 1).contiguous(), &grown), gta::Error);

    // infer::prefill returns the logits of the last prompt position, for any chunk size.
    for (int64_t chunk : {0, 1, 4}) {
      gta::nn::KVCache c2 = m.make_cache(B, T);
      Tensor last = gta::infer::prefill(m, tokens.slice(1, 0, 9).contiguous(), c2, chunk);
      EXPECT_EQ(last.shape(), (gta::Shape{B, cfg.vocab_size}));
      EXPECT_LE(max_diff(last.reshape({B, 1, cfg.vocab_size}), full, 8, 9), tol);
      EXPECT_EQ(c2.len(), 9);
    }

    // Sanity: the context matters, so the comparisons above are not trivially satisfied.
    Tensor alone = m.forward(tokens.slice(1, T - 1, T).contiguous());
    EXPECT_GT(max_diff(alone, full, T - 1, T), 1e-2 * scale);
  }
}

// Greedy generation with the cache equals greedy decoding by re-running the whole sequence.
TEST_P(InferAllTypes, GreedyGenerateMatchesUncachedReference) {
  const ModelConfig cfg = small_config(GetParam());
  Model m(cfg, DType::f64, 5);
  randomize(m, 17);
  std::vector<int32_t> prompt = {1, 5, 9, 36, 0};
  gta::infer::GenerateOptions opt;
  opt.max_new_tokens = 7;
  opt.sampling.temperature = 0;
  gta::infer::GenerateResult r = gta::infer::generate(m, {prompt}, opt);
  ASSERT_EQ(r.tokens.size(), 1u);
  ASSERT_EQ(r.tokens[0].size(), 7u);

  gta::autograd::NoGradGuard ng;
  std::vector<int32_t> seq = prompt;
  for (int i = 0; i < 7; ++i) {
    const int64_t n = static_cast<int64_t>(seq.size());
    V last = m.forward(Tensor::from_vector(seq, {1, n})).slice(1, n - 1, n).to_doubles();
    seq.push_back(static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin()));
  }
  EXPECT_EQ(r.tokens[0], std::vector<int32_t>(seq.begin() + 5, seq.end()));
  const auto& st = r.stats;
  EXPECT_EQ(st.batch, 1);
  EXPECT_EQ(st.prompt_len, 5);
  EXPECT_EQ(st.prefill_tokens, 5);
  EXPECT_EQ(st.decode_tokens, 6);  // the 7th token is sampled but never fed back
  EXPECT_EQ(st.kv_cache_bytes, cfg.n_layers * cfg.kv_cache_elems_per_token_per_layer() * (5 + 7) * 8);
  EXPECT_GE(st.prefill_tokens_per_s(), 0);
  EXPECT_GE(st.decode_tokens_per_s(), 0);
}

INSTANTIATE_TEST_SUITE_P(Infer, InferAllTypes, ::testing::ValuesIn(gta::config::attention_types()),
                         [](const auto& info) { return info.param; });

// ---- generation -------------------------------------------------------------------------------------

TEST(InferGenerate, BatchRowsMatchSingleSequences) {
  const ModelConfig cfg = small_config("gta");
  Model m(cfg, DType::f64, 1);
  randomize(m, 2);
  std::vector<std::vector<int32_t>> prompts = {{3, 4, 5}, {30, 2, 2}, {7, 7, 1}};
  gta::infer::GenerateOptions opt;
  opt.max_new_tokens = 6;
  opt.sampling.temperature = 0;
  opt.prefill_chunk = 2;
  auto batch = gta::infer::generate(m, prompts, opt);
  ASSERT_EQ(batch.tokens.size(), 3u);
  for (size_t b = 0; b < prompts.size(); ++b)
    EXPECT_EQ(batch.tokens[b], gta::infer::generate(m, {prompts[b]}, opt).tokens[0]) << "row " << b;
  EXPECT_EQ(batch.stats.prefill_tokens, 9);
  EXPECT_EQ(batch.stats.decode_tokens, 15);

  // Sampling: row 0 of a batch uses the same stream as a lone sequence; the same seed repeats,
  // and the rows of identical prompts differ (each has its own stream).
  opt.sampling.temperature = 1.5;
  opt.seed = 99;
  std::vector<std::vector<int32_t>> same(4, prompts[0]);
  auto s1 = gta::infer::generate(m, same, opt), s2 = gta::infer::generate(m, same, opt);
  EXPECT_EQ(s1.tokens, s2.tokens);
  EXPECT_EQ(s1.tokens[0], gta::infer::generate(m, {prompts[0]}, opt).tokens[0]);
  bool rows_differ = false;
  for (size_t b = 1; b < 4; ++b) rows_differ = rows_differ || s1.tokens[b] != s1.tokens[0];
  EXPECT_TRUE(rows_differ);
  opt.seed = 100;
  EXPECT_NE(gta::infer::generate(m, same, opt).tokens, s1.tokens);
}

TEST(InferGenerate, StopsAtEosAndChecksInputs) {
  const ModelConfig cfg = small_config("mla");
  Model m(cfg, DType::f64, 1);
  randomize(m, 4);
  gta::infer::GenerateOptions opt;
  opt.max_new_tokens = 5;
  opt.sampling.temperature = 0;
  auto free_run = gta::infer::generate(m, {{1, 2, 3}}, opt).tokens[0];
  ASSERT_EQ(free_run.size(), 5u);
  opt.eos_id = free_run[2];
  auto stopped = gta::infer::generate(m, {{1, 2, 3}}, opt).tokens[0];
  const size_t first = std::find(free_run.begin(), free_run.end(), free_run[2]) - free_run.begin();
  EXPECT_EQ(stopped, std::vector<int32_t>(free_run.begin(), free_run.begin() + first + 1));  // EOS kept

  // One row stopping early does not cut the others short.
  opt.eos_id = free_run[0];
  auto mixed = gta::infer::generate(m, {{1, 2, 3}, {9, 8, 7}}, opt);
  EXPECT_EQ(mixed.tokens[0].size(), 1u);
  auto row1 = gta::infer::generate(m, {{9, 8, 7}}, opt).tokens[0];
  EXPECT_EQ(mixed.tokens[1], row1);

  opt.eos_id = -1;
  opt.max_new_tokens = 0;
  EXPECT_TRUE(gta::infer::generate(m, {{1, 2}}, opt).tokens[0].empty());
  opt.max_new_tokens = 3;
  EXPECT_THROW(gta::infer::generate(m, {{1, 2}, {1}}, opt), gta::Error);  // unequal lengths
  EXPECT_THROW(gta::infer::generate(m, {{}}, opt), gta::Error);           // empty prompt
  EXPECT_THROW(gta::infer::generate(m, {{1, 37}}, opt), gta::Error);      // id >= vocab
  EXPECT_THROW(gta::infer::generate(m, {}, opt), gta::Error);

  // The model's context bounds prompt + new tokens: 2 + 3 fit in 5 (same tokens as with no
  // limit), 2 + 4 are refused.
  const auto unlimited = gta::infer::generate(m, {{1, 2}}, opt);
  opt.context = 5;
  EXPECT_EQ(gta::infer::generate(m, {{1, 2}}, opt).tokens, unlimited.tokens);
  opt.max_new_tokens = 4;
  EXPECT_ERROR_HAS(gta::infer::generate(m, {{1, 2}}, opt), "2 prompt tokens + 4 new tokens = 6",
                   "context of 5 tokens", "at most 3");
}

// ---- sampler ----------------------------------------------------------------------------------------

TEST(InferSampler, GreedyAndDistributions) {
  using gta::infer::SamplingOptions;
  Rng rng(1);
  SamplingOptions greedy;
  greedy.temperature = 0;
  EXPECT_EQ(gta::infer::sample_token(V{0.5, 2.0, -1.0, 2.0}, greedy, rng), 1);  // lowest id among ties
  EXPECT_EQ(gta::infer::sample_token(V{-INFINITY, -5.0, NAN}, greedy, rng), 1);
  EXPECT_THROW(gta::infer::sample_token(V{-INFINITY, NAN}, greedy, rng), gta::Error);
  EXPECT_THROW(gta::infer::sample_token(V{}, greedy, rng), gta::Error);

  // p = 0.1, 0.2, 0.3, 0.4 at temperature 1.
  const V logits = {std::log(0.1), std::log(0.2), std::log(0.3), std::log(0.4)};
  auto dist = [&](const SamplingOptions& o) { return gta::infer::sampling_distribution(logits.data(), 4, o); };
  auto near = [](const std::vector<std::pair<int32_t, double>>& d, const std::vector<std::pair<int32_t, double>>& w) {
    if (d.size() != w.size()) return false;
    for (size_t i = 0; i < d.size(); ++i)
      if (d[i].first != w[i].first || std::abs(d[i].second - w[i].second) > 1e-12) return false;
    return true;
  };
  SamplingOptions o;
  EXPECT_TRUE(near(dist(o), {{3, 0.4}, {2, 0.3}, {1, 0.2}, {0, 0.1}}));
  o.top_k = 2;
  EXPECT_TRUE(near(dist(o), {{3, 4.0 / 7}, {2, 3.0 / 7}}));
  o.top_k = 0, o.top_p = 0.65;  // 0.4 < 0.65 <= 0.4 + 0.3
  EXPECT_TRUE(near(dist(o), {{3, 4.0 / 7}, {2, 3.0 / 7}}));
  o.top_p = 0.3;  // the most likely token alone already has the mass
  EXPECT_TRUE(near(dist(o), {{3, 1.0}}));
  o.top_k = 3, o.top_p = 0.85;  // top-k first (0.4, 0.3, 0.2 -> 4/9, 3/9, 2/9), then the nucleus
  EXPECT_TRUE(near(dist(o), {{3, 4.0 / 9}, {2, 3.0 / 9}, {1, 2.0 / 9}}));
  o.top_p = 0.75;
  EXPECT_TRUE(near(dist(o), {{3, 4.0 / 7}, {2, 3.0 / 7}}));
  o = SamplingOptions{};
  o.temperature = 2;  // p ~ sqrt(p)
  const double z = std::sqrt(0.1) + std::sqrt(0.2) + std::sqrt(0.3) + std::sqrt(0.4);
  EXPECT_TRUE(near(dist(o), {{3, std::sqrt(0.4) / z}, {2, std::sqrt(0.3) / z}, {1, std::sqrt(0.2) / z},
                             {0, std::sqrt(0.1) / z}}));
  o = SamplingOptions{};
  o.vocab_limit = 2;  // ids 2, 3 cannot be drawn
  EXPECT_TRUE(near(dist(o), {{1, 2.0 / 3}, {0, 1.0 / 3}}));
  o.temperature = 0;
  EXPECT_TRUE(near(dist(o), {{1, 1.0}}));
  o = SamplingOptions{};
  o.top_k = 1;
  o.temperature = 5;
  EXPECT_EQ(gta::infer::sample_token(logits, o, rng), 3);  // top-1 is greedy at any temperature
}

TEST(InferSampler, FrequenciesAndDeterminism) {
  const V logits = {std::log(0.1), std::log(0.2), std::log(0.3), std::log(0.4), -INFINITY};
  gta::infer::SamplingOptions o;
  Rng rng(123);
  std::vector<int> count(5, 0);
  const int n = 40000;
  std::vector<int32_t> first;
  for (int i = 0; i < n; ++i) {
    const int32_t t = gta::infer::sample_token(logits, o, rng);
    ++count[t];
    if (i < 50) first.push_back(t);
  }
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(count[i] / double(n), 0.1 * (i + 1), 0.01) << "token " << i;
  EXPECT_EQ(count[4], 0);
  Rng again(123);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(gta::infer::sample_token(logits, o, again), first[i]);

  // sample_rows: one stream per row, f32 logits [B, V].
  Tensor rows = Tensor::from_doubles({0, 0, 9, 0, 5, 0}, {2, 3}, DType::f32);
  std::vector<Rng> rngs = {Rng(1), Rng(2)};
  o.temperature = 0;
  EXPECT_EQ(gta::infer::sample_rows(rows, o, rngs), (std::vector<int32_t>{2, 1}));
  std::vector<Rng> one = {Rng(1)};
  EXPECT_THROW(gta::infer::sample_rows(rows, o, one), gta::Error);
}

TEST(InferSampler, BadOptionsAreErrors) {
  Rng rng(0);
  const V l = {1, 2};
  for (auto set : std::vector<std::function<void(gta::infer::SamplingOptions&)>>{
           [](auto& o) { o.temperature = -1; }, [](auto& o) { o.temperature = NAN; }, [](auto& o) { o.top_k = -1; },
           [](auto& o) { o.top_p = 0; }, [](auto& o) { o.top_p = 1.5; }, [](auto& o) { o.vocab_limit = -2; }}) {
    gta::infer::SamplingOptions o;
    set(o);
    EXPECT_THROW(o.validate(), gta::Error);
    EXPECT_THROW(gta::infer::sample_token(l, o, rng), gta::Error);
  }
}

// ---- evaluation -------------------------------------------------------------------------------------

TEST(InferEvaluate, LossPerplexityAndBitsPerByte) {
  const ModelConfig cfg = small_config("gta");
  Model m(cfg, DType::f64, 3);
  randomize(m, 5);
  const TempDir tmp;
  const fs::path dir = tmp.path();
  const auto a = random_ids(100, 37, 1), b = random_ids(60, 37, 2);
  gta::data::write_shard((dir / "val_0.h5").string(), a, 37, "", 410);
  gta::data::write_shard((dir / "val_1.h5").string(), b, 37, "", 230);

  // Reference: every window of T+1 tokens (12 + 7 of them at T = 8), each loss weighted by T.
  const int64_t T = 8;
  double sum = 0;
  int64_t n_windows = 0;
  std::vector<double> first8;  // losses of the first 8 windows
  {
    gta::autograd::NoGradGuard ng;
    for (const auto* s : {&a, &b})
      for (size_t w = 0; (w + 1) * T + 1 <= s->size(); ++w, ++n_windows) {
        std::vector<int32_t> win(s->begin() + w * T, s->begin() + w * T + T + 1);
        const double l = m.loss(Tensor::from_vector(win, {1, T + 1})).item();
        sum += l;
        if (first8.size() < 8) first8.push_back(l);
      }
  }
  ASSERT_EQ(n_windows, 19);
  const double want = sum / n_windows;

  gta::infer::EvalOptions o;
  o.seq_len = T;
  o.batch_size = 4;
  auto r = gta::infer::evaluate(m, {dir.string()}, o);
  EXPECT_EQ(r.windows, 19);
  EXPECT_EQ(r.total_windows, 19);
  EXPECT_EQ(r.batches, 5);  // the last batch holds 3 windows
  EXPECT_EQ(r.tokens, 19 * T);
  EXPECT_NEAR(r.loss, want, 1e-12);
  EXPECT_NEAR(r.perplexity, std::exp(want), 1e-9);
  EXPECT_NEAR(r.bytes_per_token, 640.0 / 160.0, 1e-12);
  EXPECT_NEAR(r.bits_per_byte, want / (4.0 * std::log(2.0)), 1e-12);
  EXPECT_EQ(r.shards.size(), 2u);
  auto j = r.to_json();
  EXPECT_NEAR(j["bits_per_byte"].get<double>(), r.bits_per_byte, 0);
  EXPECT_EQ(j["tokens"].get<int64_t>(), 152);

  // The first N batches only.
  o.max_batches = 2;
  r = gta::infer::evaluate(m, {(dir / "val_*.h5").string()}, o);
  EXPECT_EQ(r.windows, 8);
  EXPECT_EQ(r.batches, 2);
  double s8 = 0;
  for (double l : first8) s8 += l;
  EXPECT_NEAR(r.loss, s8 / 8, 1e-12);

  // A batch larger than the shard set still evaluates every window once.
  o.max_batches = 0;
  o.batch_size = 50;
  r = gta::infer::evaluate(m, {dir.string()}, o);
  EXPECT_EQ(r.windows, 19);
  EXPECT_NEAR(r.loss, want, 1e-12);
}

TEST(InferEvaluate, ErrorsAndUnknownBytes) {
  const ModelConfig cfg = small_config("mqa");
  Model m(cfg, DType::f32, 3);
  const TempDir tmp;
  const fs::path dir = tmp.path();
  gta::data::write_shard((dir / "nobytes.h5").string(), random_ids(40, 37, 1), 37);
  gta::infer::EvalOptions o;
  o.seq_len = 8;
  auto r = gta::infer::evaluate(m, {(dir / "nobytes.h5").string()}, o);
  EXPECT_TRUE(std::isnan(r.bits_per_byte));
  EXPECT_TRUE(r.to_json()["bits_per_byte"].is_null());
  EXPECT_GT(r.loss, 0);

  o.seq_len = 40;  // 40 tokens hold no window of 41
  EXPECT_THROW(gta::infer::evaluate(m, {(dir / "nobytes.h5").string()}, o), gta::Error);
  o.seq_len = 8;
  gta::data::write_shard((dir / "big_vocab.h5").string(), random_ids(40, 37, 1), 1000, "", 100);
  EXPECT_THROW(gta::infer::evaluate(m, {(dir / "big_vocab.h5").string()}, o), gta::Error);
  EXPECT_THROW(gta::infer::evaluate(m, {(dir / "missing.h5").string()}, o), gta::Error);
  // Shards from another tokenizer than the model's are refused; unrecorded ones are accepted.
  gta::data::write_shard((dir / "sha.h5").string(), random_ids(40, 37, 1), 37, "abc123", 100);
  o.tokenizer_sha256 = "abc123";
  EXPECT_NO_THROW(gta::infer::evaluate(m, {(dir / "sha.h5").string()}, o));
  EXPECT_NO_THROW(gta::infer::evaluate(m, {(dir / "nobytes.h5").string()}, o));
  o.tokenizer_sha256 = "def456";
  EXPECT_THROW(gta::infer::evaluate(m, {(dir / "sha.h5").string()}, o), gta::Error);
  o.tokenizer_sha256.clear();
  o.batch_size = 0;
  EXPECT_THROW(gta::infer::evaluate(m, {(dir / "nobytes.h5").string()}, o), gta::Error);
}

// ---- checkpoint loading -----------------------------------------------------------------------------

void save_model(const Model& m, const fs::path& path) {
  std::map<std::string, Tensor> t;
  for (const auto& [name, p] : m.params().all()) t[name] = p;
  fs::create_directories(path.parent_path());
  gta::io::save_safetensors(path.string(), t, {{"config", gta::config::to_json(m.config()).dump()}});
}

// A complete training checkpoint of `m` at `step` in run directory `run` (as the trainer writes
// it: model.safetensors, optimizer.safetensors, trainer.json); returns its model.safetensors.
std::string save_run_checkpoint(const Model& m, const fs::path& run, int64_t step) {
  gta::optim::AdamW opt(m.params().all(), gta::config::OptimConfig{});
  gta::train::TrainerState st;
  st.step = step;
  const std::string d = gta::train::save_checkpoint(run.string(), m, opt, st, 0);
  return (fs::path(d) / "model.safetensors").string();
}

TEST(InferLoad, ResolvesRunDirsAndLoadsWeights) {
  const ModelConfig cfg = small_config("gha");
  Model old_m(cfg, DType::f32, 1), new_m(cfg, DType::f32, 2);
  const TempDir tmp;
  const fs::path run = tmp.path();
  save_run_checkpoint(old_m, run, 9);
  const std::string newest = save_run_checkpoint(new_m, run, 12);
  fs::create_directories(run / "checkpoints/step_20.tmp");  // unfinished write: ignored
  fs::create_directories(run / "checkpoints/step_30");      // no weights: ignored
  save_model(old_m, run / "checkpoints/step_40/model.safetensors");  // weights alone (incomplete): ignored
  const fs::path step12 = fs::path(newest).parent_path();
  EXPECT_EQ(gta::train::resolve_model_weights(run.string()).source, newest);
  EXPECT_EQ(gta::train::resolve_model_weights(step12.string()).source, newest);
  EXPECT_EQ(gta::train::resolve_model_weights(newest).source, newest);
  const gta::train::ModelWeightsInfo info = gta::train::resolve_model_weights(newest);
  ASSERT_TRUE(info.config.has_value());
  EXPECT_EQ(*info.config, cfg);
  EXPECT_EQ(info.step, 12);
  // A directory named explicitly is read as it is, complete or not (exported models hold only
  // model.safetensors).
  EXPECT_EQ(gta::train::resolve_model_weights((run / "checkpoints/step_40").string()).source,
            (run / "checkpoints/step_40/model.safetensors").string());

  EXPECT_EQ(gta::train::load_model_weights(run.string()).source, newest);
  auto model = gta::train::load_model(run.string(), DType::f64);
  EXPECT_EQ(model->config(), cfg);
  gta::autograd::NoGradGuard ng;
  Tensor tok = random_tokens(1, 6, 37, 1);
  EXPECT_LE(max_diff(model->forward(tok), new_m.forward(tok), 0, 6), 1e-6);

  // Tokenizer lookup: beside the weights, else in the run directory.
  EXPECT_EQ(gta::infer::find_tokenizer(newest), "");
  std::ofstream(run / "tokenizer.model") << "x";
  EXPECT_EQ(fs::path(gta::infer::find_tokenizer(newest)), fs::absolute(run / "tokenizer.model"));
  std::ofstream(step12 / "tokenizer.model") << "x";
  EXPECT_EQ(fs::path(gta::infer::find_tokenizer(newest)), fs::absolute(step12 / "tokenizer.model"));
}

TEST(InferLoad, BadCheckpointsAreClearErrors) {
  const TempDir tmp;
  const fs::path dir = tmp.path();
  auto message = [](const std::string& path) { return error_of([&] { gta::train::load_model(path); }); };
  EXPECT_NE(message((dir / "nope").string()).find("no such file or directory"), std::string::npos);
  EXPECT_NE(message(dir.string()).find("not a checkpoint"), std::string::npos);
  fs::create_directories(dir / "run/checkpoints");
  EXPECT_NE(message((dir / "run").string()).find("has no complete checkpoint"), std::string::npos);

  const ModelConfig cfg = small_config("mla");
  Model m(cfg, DType::f32, 1);
  save_model(m, dir / "ok.safetensors");
  const std::string bytes = read_file((dir / "ok.safetensors").string());
  write_file((dir / "cut.safetensors").string(), bytes.substr(0, bytes.size() / 2));  // truncated copy
  EXPECT_NE(message((dir / "cut.safetensors").string()).find("cut.safetensors"), std::string::npos);
  // Weights without the config metadata.
  std::map<std::string, Tensor> t;
  for (const auto& [name, p] : m.params().all()) t[name] = p;
  gta::io::save_safetensors((dir / "nocfg.safetensors").string(), t);
  EXPECT_NE(message((dir / "nocfg.safetensors").string()).find("config"), std::string::npos);
  // A config whose shapes do not match the tensors.
  ModelConfig other = cfg;
  other.d_ff = 60;
  gta::io::save_safetensors((dir / "shape.safetensors").string(), t,
                            {{"config", gta::config::to_json(other).dump()}});
  EXPECT_THROW(gta::train::load_model((dir / "shape.safetensors").string()), gta::Error);
}

// ---- the CLI end to end: a random model saved as a run, a trained tokenizer, real shards ----------

// Runs a shell command; returns its exit status, stdout and stderr.
struct CmdResult {
  int rc;
  std::string out, err;
};
CmdResult run_cmd(const std::string& cmd, const fs::path& dir) {
  const fs::path err = dir / "stderr.txt";
  FILE* p = ::popen((cmd + " 2>" + err.string()).c_str(), "r");
  EXPECT_NE(p, nullptr);
  CmdResult r{-1, "", ""};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = read_file(err.string());
  return r;
}

TEST(InferCli, EvalAndGenerateOnASavedRun) {
  const TempDir tmp;
  const fs::path dir = tmp.path();
  // A small corpus of random sentences over a few words, a BPE tokenizer of 300 pieces.
  const std::vector<std::string> words = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far",
                                          "away", "from", "home", "quickly", "while", "birds", "sang", "songs"};
  Rng rng(42);
  std::vector<std::string> docs;
  for (int d = 0; d < 120; ++d) {
    std::string doc;
    for (int w = 0, n = 5 + static_cast<int>(rng.below(15)); w < n; ++w)
      doc += (w ? " " : "") + words[rng.below(words.size())];
    docs.push_back(doc + ".");
  }
  gta::data::TokenizerTrainOptions topt;
  topt.num_threads = 1;
  gta::data::Tokenizer::train(docs, 300, (dir / "tok").string(), topt);
  auto tok = gta::data::Tokenizer::load((dir / "tok.model").string());
  ASSERT_EQ(tok.vocab_size(), 300);

  // The run: <run>/tokenizer.model and a complete checkpoint <run>/checkpoints/step_000004/; the
  // model's vocabulary (320) is padded past the tokenizer's.
  const fs::path run = dir / "run";
  ModelConfig cfg = small_config("gta");
  cfg.vocab_size = 320;
  Model m(cfg, DType::f32, 9);
  randomize(m, 10);
  const std::string weights = save_run_checkpoint(m, run, 4);
  fs::copy_file(dir / "tok.model", run / "tokenizer.model");
  {
    gta::data::ShardWriter w((dir / "val.h5").string(), 300, tok.checksum());
    for (const auto& doc : docs) {
      std::vector<int32_t> ids = tok.encode(doc);
      ids.push_back(tok.eos_id());
      w.add_document(ids, doc.size());
    }
    w.close();
  }
  const std::string gta_bin = GTA_BINARY;

  // eval --json equals the library's evaluate() on the same model.
  CmdResult ev = run_cmd(gta_bin + " eval " + run.string() + " --data " + (dir / "val.h5").string() +
                       " --seq-len 16 --batch-size 4 --batches 3 --json",
                   dir);
  ASSERT_EQ(ev.rc, 0) << ev.err;
  nlohmann::json j = nlohmann::json::parse(ev.out);
  gta::infer::EvalOptions eo;
  eo.seq_len = 16, eo.batch_size = 4, eo.max_batches = 3;
  auto want = gta::infer::evaluate(m, {(dir / "val.h5").string()}, eo);
  EXPECT_NEAR(j["loss"].get<double>(), want.loss, 1e-9);
  EXPECT_EQ(j["tokens"].get<int64_t>(), 3 * 4 * 16);
  EXPECT_NEAR(j["bits_per_byte"].get<double>(), want.bits_per_byte, 1e-9);
  EXPECT_GT(j["bits_per_byte"].get<double>(), 0);
  EXPECT_EQ(j["checkpoint"].get<std::string>(), weights);
  CmdResult ev_text = run_cmd(gta_bin + " eval " + run.string() + " --data " + (dir / "val.h5").string() + " --seq-len 16",
                        dir);
  ASSERT_EQ(ev_text.rc, 0) << ev_text.err;
  for (const char* key : {"loss", "perplexity", "bits per byte", "tokens"})
    EXPECT_NE(ev_text.out.find(key), std::string::npos) << ev_text.out;

  // generate, greedy: every sample is the library's greedy continuation of EOS + prompt.
  CmdResult gen = run_cmd(gta_bin + " generate " + run.string() +
                        " --prompt 'the cat sat' --max-new-tokens 6 --temperature 0 --num-samples 2",
                    dir);
  ASSERT_EQ(gen.rc, 0) << gen.err;
  std::vector<int32_t> prompt = {tok.eos_id()};
  tok.encode_append("the cat sat", prompt);
  gta::infer::GenerateOptions go;
  go.max_new_tokens = 6;
  go.sampling.temperature = 0;
  go.sampling.vocab_limit = 300;
  go.eos_id = tok.eos_id();
  std::vector<int32_t> ids(prompt.begin() + 1, prompt.end());
  const auto greedy = gta::infer::generate(m, {prompt}, go);
  for (int32_t t : greedy.tokens[0])
    if (t != tok.eos_id()) ids.push_back(t);
  const std::string text = tok.decode(ids);
  EXPECT_EQ(text.rfind("the cat sat", 0), 0u) << text;
  EXPECT_EQ(gen.out, "--- sample 1 ---\n" + text + "\n\n--- sample 2 ---\n" + text + "\n");
  EXPECT_NE(gen.err.find("tokens/s"), std::string::npos) << gen.err;
  EXPECT_NE(gen.err.find("KV cache"), std::string::npos) << gen.err;

  // Sampling with a seed repeats; an explicit --tokenizer works for a bare weights file.
  const std::string sample_cmd = gta_bin + " generate " + weights +
                                 " --tokenizer " + (dir / "tok.model").string() +
                                 " -p 'dog' -n 5 --top-k 20 --top-p 0.9 --seed 3";
  CmdResult s1 = run_cmd(sample_cmd, dir), s2 = run_cmd(sample_cmd, dir);
  ASSERT_EQ(s1.rc, 0) << s1.err;
  EXPECT_EQ(s1.out, s2.out);

  // A tokenizer larger than the model's vocabulary is refused.
  ModelConfig small = cfg;
  small.vocab_size = 200;
  save_model(Model(small, DType::f32, 1), dir / "small/model.safetensors");
  CmdResult bad = run_cmd(gta_bin + " generate " + (dir / "small").string() + " --tokenizer " +
                        (dir / "tok.model").string() + " -p hi",
                    dir);
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find("not the tokenizer this model was trained with"), std::string::npos) << bad.err;
  // Shards from another tokenizer than the run's are refused by eval.
  gta::data::write_shard((dir / "other.h5").string(), random_ids(100, 300, 1), 300, "0123456789abcdef", 300);
  CmdResult other = run_cmd(gta_bin + " eval " + run.string() + " --data " + (dir / "other.h5").string() + " --seq-len 16",
                      dir);
  EXPECT_NE(other.rc, 0);
  EXPECT_NE(other.err.find("tokenizer"), std::string::npos) << other.err;
}

}  // namespace
