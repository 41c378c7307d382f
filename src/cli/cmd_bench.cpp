// gta bench train CONFIG.yaml: training-step throughput on random tokens (no corpus needed):
// tokens/s, model FLOP utilisation from `gta info`'s FLOPs per token, peak device memory.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "config/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/model.h"
#include "nn/model_stats.h"
#include "ops/ops.h"
#include "optim/adamw.h"
#include "optim/clip.h"

namespace gta::cli {

namespace {

struct BenchTrainOptions {
  std::string config;
  std::vector<std::string> overrides;
  int64_t batch = 8, seq_len = 2048, steps = 10, warmup = 3, vocab = 32000;
  std::string device = "cpu";
  double peak_tflops = 0;  // for MFU; 0 = not reported
  bool json = false;
};

void run_bench_train(const BenchTrainOptions& o) {
  config::ModelConfig cfg = config::load_model_config(o.config, o.overrides);
  if (cfg.vocab_size == 0) cfg.vocab_size = o.vocab;
  const Device device = parse_device(o.device);
  nn::Model model(cfg, DType::f32, 1);
  model.params().move_to(device);
  config::OptimConfig oc;
  optim::AdamW opt(model.params().all(), oc);
  Rng rng(1);
  std::vector<int32_t> tok(static_cast<size_t>(o.batch * (o.seq_len + 1)));
  auto step = [&] {
    for (auto& t : tok) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
    Tensor tokens = Tensor::from_vector(tok, {o.batch, o.seq_len + 1}).to(device);
    opt.zero_grad();
    Tensor loss = model.loss(tokens);
    loss.backward();
    optim::clip_grad_norm(model.params().all(), 1.0);
    opt.step(1e-4);
    return loss.item();  // synchronises with the device
  };
  for (int64_t i = 0; i < o.warmup; ++i) step();
  const auto t0 = std::chrono::steady_clock::now();
  double last = 0;
  for (int64_t i = 0; i < o.steps; ++i) last = step();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double tps = static_cast<double>(o.batch * o.seq_len * o.steps) / secs;
  const nn::ModelStats st = nn::model_stats(cfg, o.seq_len);
  const double tflops = tps * st.train_flops_per_token / 1e12;
  nlohmann::json j = {{"config", o.config},
                      {"attention", cfg.attention.type},
                      {"device", device.str()},
                      {"batch", o.batch},
                      {"seq_len", o.seq_len},
                      {"steps", o.steps},
                      {"seconds", secs},
                      {"tokens_per_s", tps},
                      {"train_flops_per_token", st.train_flops_per_token},
                      {"model_tflops", tflops},
                      {"last_loss", last}};
  if (o.peak_tflops > 0) j["mfu"] = tflops / o.peak_tflops;
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s (%s) on %s, B%lld T%lld: %.0f tokens/s, %.2f model TFLOP/s", o.config.c_str(),
              cfg.attention.type.c_str(), device.str().c_str(), static_cast<long long>(o.batch),
              static_cast<long long>(o.seq_len), tps, tflops);
  if (o.peak_tflops > 0) std::printf(", MFU %.1f%%", 100 * tflops / o.peak_tflops);
  std::printf("\n");
}

}  // namespace

void register_bench(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto o = std::make_shared<BenchTrainOptions>();
  CLI::App* tr = bench->add_subcommand("train", "Training steps per second on random tokens");
  tr->add_option("config", o->config, "model config (YAML)")->required()->check(CLI::ExistingFile);
  tr->add_option("--set", o->overrides, "override a config key (model.KEY=VALUE)");
  tr->add_option("--batch", o->batch, "sequences per step")->check(CLI::PositiveNumber);
  tr->add_option("--seq-len", o->seq_len, "tokens per sequence")->check(CLI::PositiveNumber);
  tr->add_option("--steps", o->steps, "timed steps")->check(CLI::PositiveNumber);
  tr->add_option("--warmup", o->warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  tr->add_option("--vocab-size", o->vocab, "vocabulary when the config leaves it to the tokenizer");
  tr->add_option("--device", o->device, "cpu, cuda or cuda:N");
  tr->add_option("--peak-tflops", o->peak_tflops, "the device's peak TFLOP/s, to report MFU");
  tr->add_flag("--json", o->json, "print JSON");
  tr->callback([o] { run_bench_train(*o); });
}

}  // namespace gta::cli
