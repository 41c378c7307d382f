// MPI collectives on CPU tensors. MPI is initialised only when the process was launched with
// several ranks. Non-blocking all-reduces let gradient buckets start while backward continues;
// waiting polls with a deadline so a crashed or stalled peer ends the job with a clear message
// (MPI_Abort) instead of a silent hang.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "core/error.h"
#include "dist/communicator.h"
#include "dist/local_communicator.h"

namespace gta::dist {

namespace {

MPI_Datatype mpi_type(const Tensor& t) {
  switch (t.dtype()) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    default: fail("MPI all-reduce supports f32 and f64 tensors, not {}", t.str());
  }
}

class MpiCommunicator;

class MpiWork : public Work {
 public:
  MpiWork(MpiCommunicator* comm, MPI_Request req, std::string what) : comm_(comm), req_(req), what_(std::move(what)) {}
  void wait() override;

 private:
  MpiCommunicator* comm_;
  MPI_Request req_;
  std::string what_;
};

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(const LaunchEnv& env, double timeout_s) : env_(env), timeout_s_(timeout_s) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    GTA_CHECK(rank_ == env.rank && world_ == env.world_size,
              "MPI reports rank {} of {}, the launcher's environment says {} of {}", rank_, world_, env.rank,
              env.world_size);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return env_.local_rank; }
  std::string name() const override { return "mpi"; }

  std::unique_ptr<Work> all_reduce_async(const Tensor& t) override {
    GTA_CHECK(t.device().is_cpu() && t.is_contiguous(), "MPI all-reduce needs a contiguous CPU tensor, got {}",
              t.str());
    MPI_Request req;
    MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(t.numel()), mpi_type(t), MPI_SUM, MPI_COMM_WORLD,
                   &req);
    return std::make_unique<MpiWork>(this, req, "all-reduce of " + t.str());
  }
  double sum(double v) override { return reduce_scalar(v, MPI_SUM); }
  double max(double v) override { return reduce_scalar(v, MPI_MAX); }
  void broadcast(const Tensor& t, int root) override {
    GTA_CHECK(t.device().is_cpu() && t.is_contiguous(), "MPI broadcast needs a contiguous CPU tensor");
    MPI_Request req;
    MPI_Ibcast(t.raw_data(), static_cast<int>(t.nbytes()), MPI_BYTE, root, MPI_COMM_WORLD, &req);
    MpiWork(this, req, "broadcast").wait();
  }
  void barrier() override {
    MPI_Request req;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    MpiWork(this, req, "barrier").wait();
  }
  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "error: rank %d: %s\n", rank_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::abort();
  }
  double timeout_s() const { return timeout_s_; }

 private:
  double reduce_scalar(double v, MPI_Op op) {
    double out = 0;
    MPI_Request req;
    MPI_Iallreduce(&v, &out, 1, MPI_DOUBLE, op, MPI_COMM_WORLD, &req);
    MpiWork(this, req, "scalar all-reduce").wait();
    return out;
  }
  LaunchEnv env_;
  double timeout_s_;
  int rank_ = 0, world_ = 1;
};

void MpiWork::wait() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(comm_->timeout_s());
  int done = 0;
  for (int spins = 0;; ++spins) {
    MPI_Test(&req_, &done, MPI_STATUS_IGNORE);
    if (done) return;
    if (std::chrono::steady_clock::now() > deadline)
      comm_->abort(fmt::format("{} did not complete within {} s: another rank crashed or stalled (dist.timeout_s)",
                               what_, comm_->timeout_s()));
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace

std::unique_ptr<Communicator> make_communicator(const LaunchEnv& env, double timeout_s) {
  if (env.world_size == 1) return std::make_unique<LocalCommunicator>();
  return std::make_unique<MpiCommunicator>(env, timeout_s);
}

}  // namespace gta::dist
