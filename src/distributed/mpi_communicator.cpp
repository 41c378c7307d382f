// MPI collectives on CPU tensors (see mpi_communicator.h). Non-blocking all-reduces let gradient
// buckets start while backward continues; waiting polls with a deadline so a crashed or stalled
// peer ends the job with a clear message (MPI_Abort) instead of a silent hang.
#include "distributed/mpi_communicator.h"

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/error.h"
#include "ops/copy.h"
#include "ops/ops.h"

namespace gta::dist {

namespace {

MPI_Datatype mpi_type(const Tensor& t) {
  switch (t.dtype()) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    default: fail("MPI all-reduce supports f32 and f64 tensors, not {}", t.str());
  }
}

class MpiWork : public Work {
 public:
  MpiWork(MpiCommunicator* comm, MPI_Request req, std::string what) : comm_(comm), req_(req), what_(std::move(what)) {}
  void wait() override { comm_->wait_request(req_, what_); }

 private:
  MpiCommunicator* comm_;
  MPI_Request req_;
  std::string what_;
};

}  // namespace

MpiCommunicator::MpiCommunicator(const LaunchEnv& env, double timeout_s) : env_(env), timeout_s_(timeout_s) {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_);
  GTA_CHECK(rank_ == env.rank && world_ == env.world_size,
            "MPI reports rank {} of {}, the launcher's environment says {} of {}", rank_, world_, env.rank,
            env.world_size);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::unique_ptr<Work> MpiCommunicator::all_reduce_async(const Tensor& t) {
  GTA_CHECK(t.device().is_cpu() && t.is_contiguous(), "MPI all-reduce needs a contiguous CPU tensor, got {}",
            t.str());
  GTA_CHECK(t.numel() <= INT_MAX, "MPI all-reduce of {}: more than {} elements", t.str(), INT_MAX);
  MPI_Request req;
  MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(t.numel()), mpi_type(t), MPI_SUM, MPI_COMM_WORLD, &req);
  return std::make_unique<MpiWork>(this, req, "all-reduce of " + t.str());
}

void MpiCommunicator::broadcast(const Tensor& t, int root) {
  GTA_CHECK(t.device().is_cpu() && t.is_contiguous(), "MPI broadcast needs a contiguous CPU tensor, got {}", t.str());
  broadcast_bytes(t.raw_data(), t.nbytes(), root);
}

void MpiCommunicator::reduce_scatter_mean(const Tensor& in, const Tensor& out) {
  check_scatter_shapes("MPI reduce-scatter", in, out, world_);
  GTA_CHECK(in.device().is_cpu(), "MPI reduce-scatter needs CPU tensors, got {}", in.str());
  GTA_CHECK(out.numel() <= INT_MAX, "MPI reduce-scatter into {}: more than {} elements", out.str(), INT_MAX);
  MPI_Request req;
  MPI_Ireduce_scatter_block(in.raw_data(), out.raw_data(), static_cast<int>(out.numel()), mpi_type(in), MPI_SUM,
                            MPI_COMM_WORLD, &req);
  wait_request(req, "reduce-scatter of " + in.str());
  copy_strided(out, ops::scale(out, 1.0 / world_));
}

void MpiCommunicator::all_gather(const Tensor& in, const Tensor& out) {
  check_scatter_shapes("MPI all-gather", out, in, world_);
  GTA_CHECK(in.device().is_cpu(), "MPI all-gather needs CPU tensors, got {}", in.str());
  GTA_CHECK(in.nbytes() <= static_cast<size_t>(INT_MAX), "MPI all-gather of {}: more than {} bytes", in.str(),
            INT_MAX);
  MPI_Request req;
  MPI_Iallgather(in.raw_data(), static_cast<int>(in.nbytes()), MPI_BYTE, out.raw_data(),
                 static_cast<int>(in.nbytes()), MPI_BYTE, MPI_COMM_WORLD, &req);
  wait_request(req, "all-gather of " + in.str());
}

void MpiCommunicator::broadcast_bytes(void* p, size_t n, int root) {
  GTA_CHECK(n <= static_cast<size_t>(INT_MAX), "MPI broadcast of {} bytes: more than {}", n, INT_MAX);
  MPI_Request req;
  MPI_Ibcast(p, static_cast<int>(n), MPI_BYTE, root, MPI_COMM_WORLD, &req);
  wait_request(req, "broadcast");
}

void MpiCommunicator::barrier() {
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  wait_request(req, "barrier");
}

void MpiCommunicator::abort(const std::string& message) {
  std::fprintf(stderr, "error: rank %d: %s\n", rank_, message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

double MpiCommunicator::reduce_scalar(double v, MPI_Op op) {
  double out = 0;
  MPI_Request req;
  MPI_Iallreduce(&v, &out, 1, MPI_DOUBLE, op, MPI_COMM_WORLD, &req);
  wait_request(req, "scalar all-reduce");
  return out;
}

void MpiCommunicator::barrier_within(double timeout_s, const std::string& what) {
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  // Rank 0 arrives after its own work, when every live rank is already waiting here: a rank that
  // does not arrive within the collective timeout crashed or stalled, and rank 0 must not give it
  // the long budget that only its own work needs.
  if (rank_ == 0)
    wait_request(req, "the other ranks' barrier after " + what);
  else
    wait_request(req, "waiting for " + what, timeout_s,
                 "it crashed or stalled, or needs longer (dist.rank0_timeout_s)");
}

void MpiCommunicator::wait_request(MPI_Request& req, const std::string& what) {
  wait_request(req, what, timeout_s_, "another rank crashed or stalled (dist.timeout_s)");
}

void MpiCommunicator::wait_request(MPI_Request& req, const std::string& what, double timeout_s,
                                   const std::string& why) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int done = 0;
  for (int spins = 0;; ++spins) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    if (std::chrono::steady_clock::now() > deadline)
      abort(fmt::format("{} did not complete within {} s: {}", what, timeout_s, why));
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace gta::dist
