// gta bench allreduce: in-place all-reduce speed through gta's own communicator (NCCL between
// GPUs, MPI between CPU ranks), for a list of sizes; run it under `mpirun -np N`. Reported as
// nccl-tests' all_reduce_perf does: algorithm bandwidth = bytes / time; bus bandwidth = algbw *
// 2 (N-1) / N, the bytes each link carries in a ring all-reduce, comparable across rank counts
// and with the hardware's link speed.
//
// Each size is checked first (every rank contributes rank+1, so every element must come back as
// N (N+1) / 2), then `iters` all-reduces are queued back to back and waited for at the end; the
// time is the slowest rank's, after a barrier starts every rank's clock together.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/validators.h"
#include "config/config.h"
#include "core/device.h"
#include "core/error.h"
#include "distributed/communicator.h"

namespace gta::cli {

namespace {

struct BenchAllReduceOptions {
  std::vector<double> sizes_mb = {1, 25, 200};
  std::string device = "auto";
  std::string dtype;  // empty: bf16 on a GPU (the gradients of mixed precision), f32 on the CPU
  int64_t iters = 20, warmup = 5;
  double timeout_s = config::DistConfig{}.timeout_s;
  bool json = false;
};

struct AllReduceResult {
  double mb, ms, algbw_gbs, busbw_gbs;
};

// Every element of the all-reduced tensor must equal N (N+1) / 2; checks the first and the last.
void check_sum(const Tensor& t, int world, double mb) {
  const double want = world * (world + 1) / 2.0;
  for (int64_t i : {int64_t{0}, t.numel() - 1}) {
    const double got = t.slice(0, i, i + 1).to(Device::cpu()).to(DType::f64).item();
    GTA_CHECK(got == want, "all-reduce of {} MB: element {} is {} after the sum over {} ranks, expected {}", mb, i, got,
              world, want);
  }
}

AllReduceResult time_size(dist::Communicator& comm, const BenchAllReduceOptions& o, double mb, DType dtype,
                          Device device) {
  const int world = comm.world_size();
  const auto elems = static_cast<int64_t>(mb * 1e6 / static_cast<double>(dtype_size(dtype)));
  GTA_CHECK(elems > 0, "--sizes-mb {}: smaller than one {} element", mb, dtype_name(dtype));
  Tensor t = Tensor::full({elems}, comm.rank() + 1.0, dtype, device);
  comm.all_reduce(t);
  check_sum(t, world, mb);
  t = Tensor::zeros({elems}, dtype, device);  // timed on zeros: repeated sums stay finite
  auto run = [&](int64_t n) {
    std::vector<std::unique_ptr<dist::Work>> works;
    for (int64_t i = 0; i < n; ++i) works.push_back(comm.all_reduce_async(t));
    for (auto& w : works) w->wait();
  };
  run(o.warmup);
  comm.barrier();
  const auto t0 = std::chrono::steady_clock::now();
  run(o.iters);
  const double secs = comm.max(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  const double per_call = secs / static_cast<double>(o.iters);
  const double bytes = static_cast<double>(t.nbytes());
  const double algbw = bytes / per_call / 1e9;
  return {bytes / 1e6, per_call * 1e3, algbw, algbw * 2.0 * (world - 1) / world};
}

void run_bench_allreduce(const BenchAllReduceOptions& o) {
  const dist::LaunchEnv env = dist::detect_launch_env();
  GTA_CHECK(env.world_size > 1,
            "gta bench allreduce measures communication between ranks: start it under mpirun -np N with N >= 2");
  const Device device = resolve_device(o.device, env.local_rank, "--device");
  const DType dtype = dtype_from_name(!o.dtype.empty() ? o.dtype : device.is_cuda() ? "bf16" : "f32");
  std::unique_ptr<dist::Communicator> comm = dist::make_communicator(env, o.timeout_s, device);
  try {
    std::vector<AllReduceResult> results;
    for (double mb : o.sizes_mb) results.push_back(time_size(*comm, o, mb, dtype, device));
    if (comm->rank() != 0) return;
    for (const AllReduceResult& r : results) {
      if (o.json) {
        nlohmann::json j = {{"communicator", comm->name()}, {"world_size", comm->world_size()},
                            {"device", device.str()},        {"dtype", dtype_name(dtype)},
                            {"mb", r.mb},                    {"ms", r.ms},
                            {"algbw_gbs", r.algbw_gbs},      {"busbw_gbs", r.busbw_gbs}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("all-reduce %s x %d ranks (%s, %s): %10.3f MB %9.3f ms  algbw %7.1f GB/s  busbw %7.1f GB/s\n",
                    dtype_name(dtype), comm->world_size(), comm->name().c_str(), device.str().c_str(), r.mb, r.ms,
                    r.algbw_gbs, r.busbw_gbs);
      }
    }
    std::fflush(stdout);
  } catch (const std::exception& e) {
    comm->abort(e.what());  // one rank failing alone would leave the others in a collective
  }
}

}  // namespace

void register_bench_allreduce(CLI::App* bench) {
  auto o = std::make_shared<BenchAllReduceOptions>();
  CLI::App* ar = bench->add_subcommand("allreduce", "All-reduce bandwidth between ranks (run under mpirun -np N)");
  ar->add_option("--sizes-mb", o->sizes_mb, "message sizes in MB (10^6 bytes)")
      ->delimiter(',')
      ->check(kPositive);
  ar->add_option("--device", o->device, "cpu (MPI), cuda (NCCL; cuda:<local rank>) or auto");
  ar->add_option("--dtype", o->dtype, "element type (default: bf16 on a GPU, f32 on the CPU)")->check(CLI::IsMember({"f32", "bf16", "f64"}));
  ar->add_option("--iters", o->iters, "timed all-reduces per size")->check(kPositive);
  ar->add_option("--warmup", o->warmup, "untimed all-reduces per size first")->check(kNonNegative);
  ar->add_option("--timeout", o->timeout_s, "seconds a collective may take (dist.timeout_s)")
      ->check(kPositive);
  ar->add_flag("--json", o->json, "one JSON line per size");
  ar->callback([o] { run_bench_allreduce(*o); });
}

}  // namespace gta::cli
