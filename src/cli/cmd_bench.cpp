// gta bench train CONFIG.yaml: training-step throughput on random tokens (no corpus needed):
// tokens/s, model FLOP utilisation from `gta info`'s FLOPs per token, peak device memory.
//
// Under mpirun it measures data parallelism: each rank trains on its own GPU (cuda:<local rank>
// for --device cuda) or on the CPU, with its own random tokens (seed rank+1), and the gradients
// are averaged every step by the step `gta train` takes, dist::DataParallelStep (buckets of
// --bucket-mb, 25 MB by default, started during backward) over the communicator of
// dist::make_communicator (NCCL on GPUs, MPI on CPUs).
// Rank 0 reports global tokens/s = world * per-rank tokens / (the slowest rank's time).
// On a GPU it also reports each rank's milliseconds per step: wall time, and the device time of
// forward, backward, the exposed gradient sync and clip+optimizer (CUDA events between them), which
// shows where a data-parallel step loses time against one GPU. --no-grad-sync skips the all-reduce
// to give the compute-only baseline under the same launcher. --zero1 shards the optimizer as
// dist.zero1 does in training (distributed/data_parallel.h): the gradients are reduce-scattered after backward
// (the grad_sync_exposed phase), each rank clips and updates only the parameters it owns, then
// they are all-gathered (inside the clip_optimizer phase).
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/validators.h"
#include "config/config.h"
#include "core/cuda_runtime.h"
#include "core/error.h"
#include "core/rng.h"
#include "distributed/communicator.h"
#include "distributed/data_parallel.h"
#include "nn/model.h"
#include "nn/model_stats.h"
#include "ops/ops.h"

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
  bool no_grad_sync = false;
  bool zero1 = false;
  bool json = false;
};

// The phases of a training step timed on the GPU (see `phase` in bench_train).
constexpr std::array<const char*, 4> kPhases = {"forward", "backward", "grad_sync_exposed", "clip_optimizer"};

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
  // bf16 parameters get fp32 master weights and fp32 moments in AdamW (mixed precision); with
  // --zero1 under mpirun this rank's AdamW holds its own parameters only.
  dist::DataParallelStep dp(comm, model.params().all(), config::OptimConfig{}, o.zero1, o.bucket_mb);
  Rng rng(static_cast<uint64_t>(rank) + 1);                    // different tokens per rank
  std::vector<int32_t> tok(static_cast<size_t>(o.batch * (o.seq_len + 1)));
  // On a GPU, events on the compute stream split each step's device time into phases (kPhases):
  // forward, backward (with the buckets' all-reduces overlapped), the gradient sync left exposed
  // after backward, and clipping plus the optimizer. Wall time minus their sum is the time the
  // device waited for the host. Each phase's time includes any wait for the host inside it.
  // A step's loss and timers are read at the end of the next step (two sets of timers, by step
  // parity), when they are complete: the host queues the next forward behind the optimizer without
  // waiting for it, as `gta train` does (it waits only for the gradient norm, after backward).
  std::array<std::vector<std::unique_ptr<cuda::StreamTimer>>, 2> timers;
  if (device.is_cuda())
    for (auto& set : timers)
      for (size_t i = 0; i < kPhases.size(); ++i) set.push_back(std::make_unique<cuda::StreamTimer>(device.index));
  std::vector<std::unique_ptr<cuda::StreamTimer>>* phase = &timers[0];
  // The host's time in each phase is measured too: a phase whose host time reaches its device
  // time is bound by launching kernels, not by running them.
  std::vector<std::chrono::steady_clock::time_point> host_start(kPhases.size());
  auto begin = [&](size_t i) {
    host_start[i] = std::chrono::steady_clock::now();
    if (!phase->empty()) (*phase)[i]->start();
  };
  std::vector<double> phase_ms(kPhases.size(), 0.0), host_ms(kPhases.size(), 0.0);
  auto end = [&](size_t i) {
    if (!phase->empty()) (*phase)[i]->stop();
    host_ms[i] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - host_start[i]).count();
  };
  // The step in flight: its loss, its timers, and whether it is a timed step.
  Tensor pending_loss;
  std::vector<std::unique_ptr<cuda::StreamTimer>>* pending_timers = nullptr;
  bool pending_timed = false;
  double last = 0;
  auto collect = [&] {  // reads the step in flight (waits for it when nothing later was queued)
    if (!pending_loss.defined()) return;
    last = pending_loss.item();
    if (pending_timed)
      for (size_t i = 0; i < pending_timers->size(); ++i) phase_ms[i] += (*pending_timers)[i]->elapsed_ms();
    pending_loss = Tensor();
  };
  int64_t parity = 0;
  auto step = [&](bool timed) {
    phase = &timers[parity];
    parity ^= 1;
    for (auto& t : tok) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
    begin(0);
    Tensor tokens = Tensor::from_vector(tok, {o.batch, o.seq_len + 1}).to(device);
    model.params().zero_grad();
    dp.sync_next_backward(!o.no_grad_sync);  // every step communicates (no gradient accumulation here)
    Tensor loss = model.loss(tokens);
    end(0);
    begin(1);
    loss.backward();
    end(1);
    begin(2);
    if (!o.no_grad_sync) dp.sync_grads();
    end(2);
    begin(3);
    dp.clip_grad_norm(1.0);
    dp.update(1e-4);
    end(3);
    collect();  // the previous step: complete, since this step's norm waited for its backward
    pending_loss = loss.detach();
    pending_timers = phase;
    pending_timed = timed;
  };
  if (device.is_cuda()) cuda::reset_peak_memory_stats(device.index);
  for (int64_t i = 0; i < o.warmup; ++i) step(false);
  collect();  // the clock starts on an idle device
  if (world > 1) comm.barrier();  // every rank starts the clock together
  std::fill(host_ms.begin(), host_ms.end(), 0.0);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < o.steps; ++i) step(true);
  collect();  // waits for the last step
  const double my_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Every rank's wall and phase milliseconds per step, gathered on every rank (row r = rank r).
  std::vector<std::vector<double>> rank_ms(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    std::vector<double> mine = {my_secs * 1e3};
    mine.insert(mine.end(), phase_ms.begin(), phase_ms.end());
    mine.insert(mine.end(), host_ms.begin(), host_ms.end());
    for (double v : mine) {
      const double per_step = (r == rank ? v : 0.0) / static_cast<double>(o.steps);
      rank_ms[r].push_back(world > 1 ? comm.sum(per_step) : per_step);
    }
  }
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
    j["grad_sync"] = !o.no_grad_sync;
    j["zero1"] = dp.zero1();
  }
  if (device.is_cuda()) {
    j["peak_allocated_gb"] = peak_alloc_gb;
    j["peak_reserved_gb"] = peak_reserved_gb;
    auto& per_rank = j["step_ms"] = nlohmann::json::array();  // one object per rank
    for (const auto& row : rank_ms) {
      nlohmann::json r = {{"wall", row[0]}};
      for (size_t i = 0; i < kPhases.size(); ++i) r[kPhases[i]] = row[i + 1];
      for (size_t i = 0; i < kPhases.size(); ++i) r[std::string("host_") + kPhases[i]] = row[kPhases.size() + i + 1];
      per_rank.push_back(r);
    }
  }
  const double mfu = o.peak_tflops > 0 ? tflops / (o.peak_tflops * world) : 0;
  if (o.peak_tflops > 0) j["mfu"] = mfu;
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
    return;
  }
  std::printf("%s (%s) on %s", o.config.c_str(), cfg.attention.type.c_str(), device.str().c_str());
  if (world > 1) std::printf(" x %d ranks (%s%s)", world, comm.name().c_str(), dp.zero1() ? ", ZeRO-1" : "");
  std::printf(", %s, B%lld T%lld: %.0f tokens/s, %.2f model TFLOP/s", dtype_name(dtype),
              static_cast<long long>(o.batch), static_cast<long long>(o.seq_len), tps, tflops);
  if (o.peak_tflops > 0) std::printf(", MFU %.1f%%", 100 * mfu);
  if (device.is_cuda()) std::printf(", peak memory %.2f GB allocated / %.2f GB reserved", peak_alloc_gb, peak_reserved_gb);
  std::printf("\n");
  if (device.is_cuda())
    for (int r = 0; r < world; ++r) {
      std::printf("  rank %d, ms per step: wall %.2f; GPU", r, rank_ms[r][0]);
      for (size_t i = 0; i < kPhases.size(); ++i) std::printf(" %s %.2f", kPhases[i], rank_ms[r][i + 1]);
      std::printf("; host");
      for (size_t i = 0; i < kPhases.size(); ++i) std::printf(" %.2f", rank_ms[r][kPhases.size() + i + 1]);
      std::printf("\n");
    }
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
void register_bench_allreduce(CLI::App* bench);  // cmd_bench_allreduce.cpp
void register_bench_decode(CLI::App* bench);     // cmd_bench_decode.cpp

void register_bench(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto o = std::make_shared<BenchTrainOptions>();
  CLI::App* tr = bench->add_subcommand("train", "Training steps per second on random tokens");
  tr->add_option("config", o->config, "model config (YAML)")->required()->check(CLI::ExistingFile);
  tr->add_option("--set", o->overrides, "override a config key (model.KEY=VALUE)");
  tr->add_option("--batch", o->batch, "sequences per step")->check(kPositive);
  tr->add_option("--seq-len", o->seq_len, "tokens per sequence")->check(kPositive);
  tr->add_option("--steps", o->steps, "timed steps")->check(kPositive);
  tr->add_option("--warmup", o->warmup, "untimed steps first")->check(kNonNegative);
  tr->add_option("--vocab-size", o->vocab, "vocabulary when the config leaves it to the tokenizer");
  tr->add_option("--device", o->device, "cpu, cuda (under mpirun: cuda:<local rank>), cuda:N or auto");
  tr->add_option("--dtype", o->dtype, "parameter dtype: f32, or bf16 (mixed precision, CUDA only)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  tr->add_option("--bucket-mb", o->bucket_mb, "gradient bucket size under mpirun (dist.bucket_mb)")
      ->check(kPositive);
  tr->add_option("--timeout", o->timeout_s, "seconds a collective may take under mpirun (dist.timeout_s)")
      ->check(kPositive);
  tr->add_option("--peak-tflops", o->peak_tflops, "the device's peak TFLOP/s, to report MFU");
  tr->add_flag("--no-grad-sync", o->no_grad_sync,
              "under mpirun, skip the gradient all-reduce (ranks train apart): the compute-only baseline");
  tr->add_flag("--zero1", o->zero1, "under mpirun, shard the optimizer state over the ranks (dist.zero1)")
      ->excludes("--no-grad-sync");
  tr->add_flag("--json", o->json, "print JSON");
  tr->callback([o] { run_bench_train(*o); });
  register_bench_attention(bench);
  register_bench_allreduce(bench);
  register_bench_decode(bench);
}

}  // namespace gta::cli
