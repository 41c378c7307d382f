#include "infer/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

#include "autograd/tape.h"
#include "core/error.h"
#include "data/loader.h"

namespace gta::infer {

nlohmann::json EvalResult::to_json() const {
  nlohmann::json j = {{"loss", loss},
                      {"perplexity", perplexity},
                      {"bits_per_byte", nullptr},
                      {"bytes_per_token", bytes_per_token},
                      {"tokens", tokens},
                      {"windows", windows},
                      {"total_windows", total_windows},
                      {"batches", batches},
                      {"seconds", seconds},
                      {"shards", shards},
                      {"shard_tokenizer_sha256", nullptr}};
  if (!shard_tokenizer_sha256.empty()) j["shard_tokenizer_sha256"] = shard_tokenizer_sha256;
  if (std::isfinite(bits_per_byte)) j["bits_per_byte"] = bits_per_byte;
  return j;
}

std::string bits_per_byte_text(double bpb) {
  return std::isfinite(bpb) ? fmt::format("{:.3f} bits/byte", bpb)
                            : "bits/byte n/a (the shards record no byte count: llm.c .bin shards carry none)";
}

void check_shards_fit(const data::DataLoader& loader, int64_t V, const std::string& tokenizer_sha256) {
  GTA_CHECK(loader.vocab_size() <= static_cast<uint64_t>(V),
            "shards were written with vocabulary size {} but the model has {} (different tokenizer?)",
            loader.vocab_size(), V);
  GTA_CHECK(tokenizer_sha256.empty() || loader.tokenizer_sha256().empty() ||
                loader.tokenizer_sha256() == tokenizer_sha256,
            "shards {} were encoded with tokenizer {} but the model's tokenizer is {}", loader.files().front(),
            loader.tokenizer_sha256().substr(0, 12), tokenizer_sha256.substr(0, 12));
}

namespace {

// The sequential loader over the shards, checked against a model of vocabulary V.
std::unique_ptr<data::DataLoader> open_eval_data(const std::vector<std::string>& shard_specs, int64_t V,
                                                 const EvalOptions& opt) {
  GTA_CHECK(opt.batch_size > 0, "eval batch size must be > 0, got {}", opt.batch_size);
  GTA_CHECK(opt.seq_len > 0, "eval sequence length must be > 0, got {}", opt.seq_len);
  GTA_CHECK(opt.max_batches >= 0, "eval batches must be >= 0 (0 = all), got {}", opt.max_batches);
  data::LoaderOptions lo;
  lo.seq_len = opt.seq_len;
  lo.batch_size = opt.batch_size;
  lo.mode = data::SampleMode::Sequential;
  lo.vocab_limit = V;
  auto loader_ptr = std::make_unique<data::DataLoader>(shard_specs, lo);
  const data::DataLoader& loader = *loader_ptr;
  check_shards_fit(loader, V, opt.tokenizer_sha256);
  GTA_CHECK(loader.n_windows() > 0,
            "shards {} hold {} tokens: no window of seq_len + 1 = {} tokens to evaluate (lower the sequence length)",
            loader.files().front(), loader.total_tokens(), opt.seq_len + 1);
  return loader_ptr;
}

}  // namespace

void check_eval_data(const std::vector<std::string>& shard_specs, int64_t vocab_size, const EvalOptions& opt) {
  open_eval_data(shard_specs, vocab_size, opt);
}

namespace {

// -ln softmax(logits)[target] of each of the rows x T targets of `w` (rows of T+1 tokens), passed
// to `sink` with the shard position of each target; returns their sum.
double score_per_token(const nn::Model& model, const data::DataLoader& loader, const data::Batch& b, int64_t rows,
                       const Tensor& w, const TokenLossSink& sink) {
  const int64_t T = b.T, V = model.config().vocab_size;
  Tensor logits = model.forward(nn::split_inputs_targets(w).first);  // [rows, T, V]
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const Tensor lr = logits.slice(0, r, r + 1).to(Device::cpu()).to(DType::f64).contiguous();
    const double* p = lr.data<double>();
    const auto [shard, start] = loader.window_location(b.samples[r]);
    for (int64_t t = 0; t < T; ++t, p += V) {
      const int32_t target = b.row(static_cast<int>(r))[t + 1];
      const double mx = *std::max_element(p, p + V);
      double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(p[v] - mx);
      const double loss = mx + std::log(z) - p[target];
      sum += loss;
      sink({shard, start + static_cast<uint64_t>(t) + 1, target, loss});
    }
  }
  return sum;
}

}  // namespace

EvalResult evaluate(const nn::Model& model, const std::vector<std::string>& shard_specs, const EvalOptions& opt,
                    const TokenLossSink& sink) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t V = model.config().vocab_size;
  const std::unique_ptr<data::DataLoader> loader_ptr = open_eval_data(shard_specs, V, opt);
  data::DataLoader& loader = *loader_ptr;
  const uint64_t n_windows = loader.n_windows();

  EvalResult r;
  r.shards = loader.files();
  r.shard_tokenizer_sha256 = loader.tokenizer_sha256();
  r.total_windows = static_cast<int64_t>(n_windows);
  r.bytes_per_token = loader.bytes_per_token();
  const Device dev = model.params().all().empty() ? Device::cpu() : model.params().all().front().second.device();
  autograd::NoGradGuard no_grad;
  double nll_sum = 0;  // sum of per-target losses, in nats
  const int64_t T = opt.seq_len, W = T + 1;
  while (loader.cursor() < n_windows && (opt.max_batches == 0 || r.batches < opt.max_batches)) {
    data::Batch b = loader.next_batch();
    // The last batch may run past the final window (into the next epoch): drop those rows.
    int64_t rows = 0;
    while (rows < b.B && b.samples[rows] < n_windows) ++rows;
    std::vector<int32_t> toks(b.tokens.begin(), b.tokens.begin() + rows * W);
    const Tensor w = Tensor::from_vector(toks, {rows, W}).to(dev);
    nll_sum += sink ? score_per_token(model, loader, b, rows, w, sink)
                    : model.loss(w).item() * static_cast<double>(rows * T);
    r.tokens += rows * T;
    r.windows += rows;
    ++r.batches;
  }
  r.loss = nll_sum / static_cast<double>(r.tokens);
  GTA_CHECK(std::isfinite(r.loss),
            "the model's loss over {} windows of {} is {}: its weights hold NaN or Inf (a diverged or corrupt "
            "checkpoint), not a data problem",
            r.windows, r.shards.front(), r.loss);
  r.perplexity = std::exp(r.loss);
  // Bytes of the scored tokens estimated with the shard set's bytes per token (see evaluate.h).
  r.bits_per_byte = r.bytes_per_token > 0 ? r.loss / (r.bytes_per_token * std::log(2.0))
                                          : std::numeric_limits<double>::quiet_NaN();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace gta::infer
