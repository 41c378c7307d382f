// gta bench decode CONFIG.yaml --batch B --context C [--new-tokens N] [--json]: inference speed
// at a (batch, context) point on random weights and random tokens (no tokenizer, no
// checkpoint); --batch and --context take comma-separated lists, every pair a point, one model.
// bf16 on CUDA, f32 on the CPU. The KV cache is filled to C tokens by a real prefill (the
// training forward, in chunks of --prefill-chunk tokens per sequence; timed twice, the first,
// cold one reported apart), then N decode steps of
// one token per sequence are timed (after --warmup untimed ones; the input tokens are random and
// already on the device, so sampling is not part of the step). The steps go through
// infer::DecodeStep: on a GPU the first warm-up step runs eagerly and the second captures the
// CUDA graph that every later step replays (keep --warmup >= 2 to leave the capture untimed).
//
// The memory roofline of a decode step: every weight is read once (the input embedding of an
// untied model only at B rows, counted as none) and every cached token of every sequence once, so
// a step cannot take less than (weight bytes + cache bytes at the step's context) / bandwidth.
// The bandwidth is the device's copy bandwidth, measured in the same process as (bytes read +
// bytes written) / time of a large device-to-device copy (std::memcpy on the CPU), or given by
// --bandwidth-gbs. The report gives the percentage of that bound the measured steps reach.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "autograd/tape.h"
#include "cli/commands.h"
#include "cli/validators.h"
#include "config/config.h"
#include "core/cuda_runtime.h"
#include "core/device.h"
#include "core/error.h"
#include "core/rng.h"
#include "infer/decode_step.h"
#include "infer/generate.h"
#include "nn/model.h"

namespace gta::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchDecodeOptions {
  std::string config;
  std::vector<std::string> overrides;
  std::vector<int64_t> batches = {1}, contexts = {2048};  // every (batch, context) pair is a point
  int64_t new_tokens = 64, warmup = 4, prefill_chunk = 0, vocab = 32000;
  std::string device = "auto";
  double bandwidth_gbs = 0;  // 0: measure
  double max_cache_gb = 0;   // > 0: points whose cache would be larger are reported as skipped
  bool json = false;
};

// Copy bandwidth in bytes/s: (read + written bytes) / time of copying a 1 GiB buffer (64 MiB on
// the CPU), the best of 5 copies after one warm-up.
double measure_copy_bandwidth(Device dev) {
  const int64_t elems = dev.is_cuda() ? (int64_t{1} << 28) : (int64_t{1} << 24);  // f32
  const size_t n = static_cast<size_t>(elems) * 4;
  Tensor a = Tensor::zeros({elems}, DType::f32, dev), b = Tensor::zeros({elems}, DType::f32, dev);
  double best = 1e30;
  for (int i = 0; i < 6; ++i) {
    double s;
    if (dev.is_cuda()) {
      cuda::StreamTimer t(dev.index);
      t.start();
      cuda::copy(b.raw_data(), true, a.raw_data(), true, n);
      t.stop();
      s = t.elapsed_ms() / 1e3;
    } else {
      const auto t0 = Clock::now();
      std::memcpy(b.raw_data(), a.raw_data(), n);
      s = std::chrono::duration<double>(Clock::now() - t0).count();
    }
    if (i > 0) best = std::min(best, s);
  }
  return 2.0 * static_cast<double>(n) / best;
}

void sync(Device dev) {
  if (dev.is_cuda()) cuda::synchronize(dev.index);
}

// Prefills a cache of `B` sequences to `C` tokens and times `o.new_tokens` decode steps.
nlohmann::json bench_point(const BenchDecodeOptions& o, const config::ModelConfig& cfg, const nn::Model& model,
                           Device dev, double bandwidth, int64_t B, int64_t C) {
  const DType dtype = model.params().dtype();
  const int64_t N = o.new_tokens;
  // The whole cache is allocated up front, so no timed step grows it.
  nn::KVCache cache = model.make_cache(B, C + o.warmup + N);
  Rng rng(static_cast<uint64_t>(B * 1000003 + C));
  auto random_tokens = [&](int64_t T) {
    std::vector<int32_t> t(static_cast<size_t>(B * T));
    for (auto& x : t) x = static_cast<int32_t>(rng.below(cfg.vocab_size));
    return Tensor::from_vector(t, {B, T}).to(dev);
  };
  // Long prompts at large batch go through in chunks of about 16k tokens (B x chunk), so that the
  // chunk's activations and logits stay a few GB.
  const int64_t chunk = o.prefill_chunk > 0 ? o.prefill_chunk : std::max<int64_t>(1, std::min(C, 16384 / B));
  Tensor prompt = random_tokens(C);
  // A point's first prefill pays costs that later forwards of the same shapes do not: each
  // kernel's module is loaded at its first launch (CUDA's lazy loading), cuBLASLt picks an
  // algorithm per new GEMM shape, the caching allocator takes its blocks from the driver. So the
  // prompt is prefilled twice: the first time is reported apart (prefill_first_tokens_per_s), the
  // cache is emptied, and the second time is the steady rate (prefill_tokens_per_s).
  auto timed_prefill = [&] {
    sync(dev);
    const auto t0 = Clock::now();
    infer::prefill(model, prompt, cache, chunk).to_doubles();  // reading the logits waits for the work
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  const double first_prefill_s = timed_prefill();
  cache.reset();
  const double prefill_s = timed_prefill();

  infer::DecodeStep step(model, cache);
  std::vector<Tensor> inputs;
  for (int64_t i = 0; i < o.warmup + N; ++i) inputs.push_back(random_tokens(1));
  for (int64_t i = 0; i < o.warmup; ++i) step.run(inputs[i]);
  sync(dev);
  const int64_t ctx0 = cache.len();
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < N; ++i) step.run(inputs[o.warmup + i]);
  sync(dev);
  const double decode_s = std::chrono::duration<double>(Clock::now() - t0).count();

  // Bytes a step must read: the weights once, and the cache at the step's mean context.
  int64_t weight_bytes = 0;
  for (const auto& [name, p] : model.params().all())
    if (cfg.tie_embeddings || name != "model.embed_tokens.weight") weight_bytes += static_cast<int64_t>(p.nbytes());
  int64_t cache_elems_per_token = 0;
  for (const auto& layer : model.cache_layout())
    for (const auto& e : layer) cache_elems_per_token += e.heads * e.width;
  const double mean_ctx = static_cast<double>(ctx0) + (static_cast<double>(N) + 1) / 2;
  const double cache_bytes_read = static_cast<double>(cache_elems_per_token * B * dtype_size(dtype)) * mean_ctx;
  const double step_ms = decode_s * 1e3 / static_cast<double>(N);
  const double roofline_ms = (static_cast<double>(weight_bytes) + cache_bytes_read) / bandwidth * 1e3;
  return {{"config", o.config},
          {"attention", cfg.attention.type},
          {"device", dev.str()},
          {"dtype", dtype_name(dtype)},
          {"batch", B},
          {"context", C},
          {"new_tokens", N},
          {"decode_path", step.path()},
          {"prefill_tokens_per_s", static_cast<double>(B * C) / prefill_s},
          {"prefill_first_tokens_per_s", static_cast<double>(B * C) / first_prefill_s},
          {"decode_tokens_per_s", static_cast<double>(B * N) / decode_s},
          {"ms_per_step", step_ms},
          {"cache_bytes", cache_elems_per_token * B * C * static_cast<int64_t>(dtype_size(dtype))},
          {"weight_bytes", weight_bytes},
          {"bytes_per_step", static_cast<double>(weight_bytes) + cache_bytes_read},
          {"bandwidth_gbs", bandwidth / 1e9},
          {"bandwidth_measured", o.bandwidth_gbs <= 0},
          {"roofline_ms_per_step", roofline_ms},
          {"roofline_pct", 100 * roofline_ms / step_ms}};
}

void print_table(const std::vector<nlohmann::json>& rows) {
  auto measured =
      std::find_if(rows.begin(), rows.end(), [](const nlohmann::json& r) { return !r.contains("skipped"); });
  if (measured == rows.end()) measured = rows.begin();
  const nlohmann::json& f = *measured;
  if (f.contains("skipped")) {
    std::printf("%s: every point skipped\n", f["config"].get<std::string>().c_str());
    for (const auto& r : rows)
      std::printf("  batch %lld context %lld: %s\n", static_cast<long long>(r["batch"].get<int64_t>()),
                  static_cast<long long>(r["context"].get<int64_t>()), r["skipped"].get<std::string>().c_str());
    return;
  }
  std::printf("%s (%s) on %s, %s, %lld new tokens per point (%s); copy bandwidth %.1f GB/s%s\n",
              f["config"].get<std::string>().c_str(), f["attention"].get<std::string>().c_str(),
              f["device"].get<std::string>().c_str(), f["dtype"].get<std::string>().c_str(),
              static_cast<long long>(f["new_tokens"].get<int64_t>()), f["decode_path"].get<std::string>().c_str(),
              f["bandwidth_gbs"].get<double>(), f["bandwidth_measured"].get<bool>() ? "" : " (given)");
  std::printf("%6s %8s %16s %16s %16s %12s %16s %14s %13s\n", "batch", "context", "prefill tok/s", "(first, cold)",
              "decode tok/s", "ms/step", "KV cache bytes", "roofline ms", "of roofline");
  for (const auto& r : rows)
    if (r.contains("skipped"))
      std::printf("%6lld %8lld  skipped: %s\n", static_cast<long long>(r["batch"].get<int64_t>()),
                  static_cast<long long>(r["context"].get<int64_t>()), r["skipped"].get<std::string>().c_str());
    else
      std::printf("%6lld %8lld %16.1f %16.1f %16.1f %12.3f %16lld %14.3f %12.1f%%\n",
                  static_cast<long long>(r["batch"].get<int64_t>()),
                  static_cast<long long>(r["context"].get<int64_t>()), r["prefill_tokens_per_s"].get<double>(),
                  r["prefill_first_tokens_per_s"].get<double>(), r["decode_tokens_per_s"].get<double>(),
                  r["ms_per_step"].get<double>(), static_cast<long long>(r["cache_bytes"].get<int64_t>()),
                  r["roofline_ms_per_step"].get<double>(), r["roofline_pct"].get<double>());
}

void run_bench_decode(const BenchDecodeOptions& o) {
  config::ModelConfig cfg = config::load_model_config(o.config, o.overrides);
  if (cfg.vocab_size == 0) cfg.vocab_size = o.vocab;
  const Device dev = resolve_device(o.device, 0, "--device");
  autograd::NoGradGuard no_grad;
  nn::Model model(cfg, dev.is_cuda() ? DType::bf16 : DType::f32, 1);
  model.params().move_to(dev);
  const double bandwidth = o.bandwidth_gbs > 0 ? o.bandwidth_gbs * 1e9 : measure_copy_bandwidth(dev);
  const double cache_bytes_per_token = static_cast<double>(model.make_cache(1, 1).bytes());
  std::vector<nlohmann::json> rows;
  for (int64_t B : o.batches)
    for (int64_t C : o.contexts) {
      const double need = cache_bytes_per_token * static_cast<double>(B * (C + o.warmup + o.new_tokens));
      if (o.max_cache_gb > 0 && need > o.max_cache_gb * 1e9)
        rows.push_back(
            {{"config", o.config},
             {"attention", cfg.attention.type},
             {"batch", B},
             {"context", C},
             {"skipped", fmt::format("a cache of {:.1f} GB > --max-cache-gb {}", need / 1e9, o.max_cache_gb)}});
      else
        rows.push_back(bench_point(o, cfg, model, dev, bandwidth, B, C));
      if (o.json) {
        std::printf("%s\n", rows.back().dump().c_str());
        std::fflush(stdout);
      }
    }
  if (!o.json) print_table(rows);
  std::fflush(stdout);
}

}  // namespace

void register_bench_decode(CLI::App* bench) {
  auto o = std::make_shared<BenchDecodeOptions>();
  CLI::App* cmd = bench->add_subcommand("decode", "KV-cached decoding speed and its memory roofline, random weights");
  cmd->add_option("config", o->config, "model config (YAML)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", o->overrides, "override a config key (model.KEY=VALUE)");
  cmd->add_option("--batch", o->batches, "sequences decoded together (a comma-separated list: one point each)")
      ->delimiter(',')
      ->check(kPositive);
  cmd->add_option("--context", o->contexts,
                  "tokens per sequence in the cache before the timed steps (a comma-separated list)")
      ->delimiter(',')
      ->check(kPositive);
  cmd->add_option("--new-tokens", o->new_tokens, "timed decode steps")->check(kPositive);
  cmd->add_option("--warmup", o->warmup, "untimed decode steps first")->check(kNonNegative);
  cmd->add_option("--prefill-chunk", o->prefill_chunk,
                  "prompt tokens per sequence per prefill forward (0: about 16384 / batch)")
      ->check(kNonNegative);
  cmd->add_option("--vocab-size", o->vocab, "vocabulary when the config leaves it to the tokenizer");
  cmd->add_option("--device", o->device, "cpu, cuda, cuda:N or auto (the GPU when there is one)");
  cmd->add_option("--bandwidth-gbs", o->bandwidth_gbs, "memory bandwidth for the roofline (0: measure a copy)")
      ->check(kNonNegative);
  cmd->add_option("--max-cache-gb", o->max_cache_gb,
                  "report points whose KV cache would exceed this many GB as skipped (0: run every point)")
      ->check(kNonNegative);
  cmd->add_flag("--json", o->json, "print JSON, one line per point");
  cmd->callback([o] { run_bench_decode(*o); });
}

}  // namespace gta::cli
