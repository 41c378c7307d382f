// gta bench train CONFIG.yaml: training-step throughput on random tokens (no corpus needed):
// tokens/s, model FLOP utilisation from `gta info`'s FLOPs per token, peak device memory.
//
// Under mpirun it measures data parallelism: each rank trains on its own GPU (cuda:<local rank>
// for --device cuda) or on the CPU, with its own random tokens (seed rank+1), and the gradients
// are averaged every step by dist::GradSync (buckets of --bucket-mb, 25 MB by default, started
// during backward) over the communicator of dist::make_communicator (NCCL on GPUs, MPI on CPUs).
// Rank 0 reports global tokens/s = world * per-rank tokens / (the slowest rank's time).
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "config/config.h"
#include "core/cuda_runtime.h"
#include "core/error.h"
#include "core/rng.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"
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
  std::string dtype = "f32";
  double peak_tflops = 0;  // for MFU; 0 = not reported
  double timeout_s = config::DistConfig{}.timeout_s;
  double bucket_mb = config::DistConfig{}.bucket_mb;
  bool json = false;
};

void bench_train(const BenchTrainOptions& o, dist::Communicator& comm, Device device) {
  config::ModelConfig cfg = config::load_model_config(o.config, o.overrides);
  if (cfg.vocab_size == 0) cfg.vocab_size = o.vocab;
  const DType dtype = dtype_from_name(o.dtype);
  GTA_CHECK(dtype != DType::bf16 || device.is_cuda(),
            "--dtype bf16 needs a CUDA device (the CPU backend trains in f32); got --device {}", o.device);
  const int world = comm.world_size(), rank = comm.rank();
  // Same seed on every rank: identical initial weights, kept identical by averaged gradients.
  nn::Model model(cfg, dtype, 1);
  model.params().move_to(device);
  config::OptimConfig oc;
  // bf16 parameters get fp32 master weights and fp32 moments in AdamW (mixed precision).
  optim::AdamW opt(model.params().all(), oc);
  dist::GradSync grad_sync(comm, model.params().all(), o.bucket_mb);  // a no-op for one process
  Rng rng(static_cast<uint64_t>(rank) + 1);                    // different tokens per rank
  std::vector<int32_t> tok(static_cast<size_t>(o.batch * (o.seq_len + 1)));
  auto step = [&] {
    for (auto& t : tok) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
    Tensor tokens = Tensor::from_vector(tok, {o.batch, o.seq_len + 1}).to(device);
    opt.zero_grad();
    grad_sync.set_sync(true);  // every step communicates (no gradient accumulation here)
    Tensor loss = model.loss(tokens);
    loss.backward();
    grad_sync.finish();
    optim::clip_grad_norm(model.params().all(), 1.0);
    opt.step(1e-4);
    return loss.item();  // synchronises with the device
  };
  if (device.is_cuda()) cuda::reset_peak_memory_stats(device.index);
  for (int64_t i = 0; i < o.warmup; ++i) step();
  if (world > 1) comm.barrier();  // every rank starts the clock together
  const auto t0 = std::chrono::steady_clock::now();
  double last = 0;
  for (int64_t i = 0; i < o.steps; ++i) last = step();
  const double my_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The slowest rank sets the pace of a data-parallel run.
  const double secs = world > 1 ? comm.max(my_secs) : my_secs;
  if (world > 1) last = comm.sum(last) / world;
  const double rank_tokens = static_cast<double>(o.batch * o.seq_len * o.steps);
  const double tps = world * rank_tokens / secs;
  const nn::ModelStats st = nn::model_stats(cfg, o.seq_len);
  const double tflops = tps * st.train_flops_per_token / 1e12;
  double peak_alloc_gb = 0, peak_reserved_gb = 0;
  if (device.is_cuda()) {
    const cuda::MemoryStats ms = cuda::memory_stats(device.index);
    peak_alloc_gb = static_cast<double>(ms.peak_allocated_bytes) / 1e9;
    peak_reserved_gb = static_cast<double>(ms.peak_reserved_bytes) / 1e9;
    if (world > 1) {  // the largest over ranks
      peak_alloc_gb = comm.max(peak_alloc_gb);
      peak_reserved_gb = comm.max(peak_reserved_gb);
    }
  }
  if (rank != 0) return;
  nlohmann::json j = {{"config", o.config},
                      {"attention", cfg.attention.type},
                      {"device", device.str()},
                      {"dtype", dtype_name(dtype)},
                      {"batch", o.batch},
                      {"seq_len", o.seq_len},
                      {"steps", o.steps},
                      {"seconds", secs},
                      {"tokens_per_s", tps},
                      {"train_flops_per_token", st.train_flops_per_token},
                      {"model_tflops", tflops},
                      {"last_loss", last}};
  if (world > 1) {
    j["world_size"] = world;
    j["communicator"] = comm.name();
    j["tokens_per_s_per_rank"] = tps / world;
  }
  if (device.is_cuda()) {
    j["peak_allocated_gb"] = peak_alloc_gb;
    j["peak_reserved_gb"] = peak_reserved_gb;
  }
  const double mfu = o.peak_tflops > 0 ? tflops / (o.peak_tflops * world) : 0;
  if (o.peak_tflops > 0) j["mfu"] = mfu;
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
    return;
  }
  std::printf("%s (%s) on %s", o.config.c_str(), cfg.attention.type.c_str(), device.str().c_str());
  if (world > 1) std::printf(" x %d ranks (%s)", world, comm.name().c_str());
  std::printf(", %s, B%lld T%lld: %.0f tokens/s, %.2f model TFLOP/s", dtype_name(dtype),
              static_cast<long long>(o.batch), static_cast<long long>(o.seq_len), tps, tflops);
  if (o.peak_tflops > 0) std::printf(", MFU %.1f%%", 100 * mfu);
  if (device.is_cuda()) std::printf(", peak memory %.2f GB allocated / %.2f GB reserved", peak_alloc_gb, peak_reserved_gb);
  std::printf("\n");
  std::fflush(stdout);
}

void run_bench_train(const BenchTrainOptions& o) {
  const dist::LaunchEnv env = dist::detect_launch_env();
  // "cuda" is cuda:<local rank>: one process per GPU under mpirun (cuda:0 for one process).
  const Device device = resolve_device(o.device, env.local_rank, "--device");
  std::unique_ptr<dist::Communicator> comm = dist::make_communicator(env, o.timeout_s, device);
  try {
    bench_train(o, *comm, device);
  } catch (const std::exception& e) {
    // One rank failing alone would leave the others waiting in a collective: end them all.
    if (comm->world_size() > 1) comm->abort(e.what());
    throw;
  }
}

}  // namespace

void register_bench_attention(CLI::App* bench);  // cmd_bench_attention.cpp

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
  tr->add_option("--device", o->device, "cpu, cuda (under mpirun: cuda:<local rank>), cuda:N or auto");
  tr->add_option("--dtype", o->dtype, "parameter dtype: f32, or bf16 (mixed precision, CUDA only)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  tr->add_option("--bucket-mb", o->bucket_mb, "gradient bucket size under mpirun (dist.bucket_mb)")
      ->check(CLI::PositiveNumber);
  tr->add_option("--timeout", o->timeout_s, "seconds a collective may take under mpirun (dist.timeout_s)")
      ->check(CLI::PositiveNumber);
  tr->add_option("--peak-tflops", o->peak_tflops, "the device's peak TFLOP/s, to report MFU");
  tr->add_flag("--json", o->json, "print JSON");
  tr->callback([o] { run_bench_train(*o); });
  register_bench_attention(bench);
}

}  // namespace gta::cli
