// MPI collectives on CPU tensors, and the bootstrap other communicators build on (NCCL takes its
// rank, world size, unique-id broadcast, scalar reductions, barrier and abort from here).
// MPI is initialised when an MpiCommunicator is created (only for runs with several ranks) and
// finalised when it is destroyed. Every blocking call polls a non-blocking MPI request against
// the communicator's deadline (dist.timeout_s), so a crashed or stalled peer ends the job with a
// clear message (MPI_Abort) instead of a silent hang.
#pragma once
#include <mpi.h>

#include <cstddef>
#include <string>

#include "distributed/communicator.h"

namespace gta::dist {

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(const LaunchEnv& env, double timeout_s);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return env_.local_rank; }
  std::string name() const override { return "mpi"; }
  // CPU tensors only (f32, f64).
  std::unique_ptr<Work> all_reduce_async(const Tensor& t) override;
  double sum(double v) override { return reduce_scalar(v, MPI_SUM); }
  double max(double v) override { return reduce_scalar(v, MPI_MAX); }
  // CPU tensors only.
  void broadcast(const Tensor& t, int root) override;
  // CPU tensors only (reduce-scatter: f32, f64; the sum divided by the world size afterwards).
  void reduce_scatter_mean(const Tensor& in, const Tensor& out) override;
  void all_gather(const Tensor& in, const Tensor& out) override;
  void barrier() override;
  void barrier_within(double timeout_s, const std::string& what) override;
  [[noreturn]] void abort(const std::string& message) override;

  // Every rank receives root's n bytes at p (host memory), within the timeout.
  void broadcast_bytes(void* p, size_t n, int root);
  // Waits for `req` until the deadline; past it, aborts the job naming `what`.
  void wait_request(MPI_Request& req, const std::string& what);
  // Waits up to timeout_s; past it, ends the job with "<what> did not complete within <t> s: <why>".
  void wait_request(MPI_Request& req, const std::string& what, double timeout_s, const std::string& why);
  double timeout_s() const { return timeout_s_; }

 private:
  double reduce_scalar(double v, MPI_Op op);
  LaunchEnv env_;
  double timeout_s_;
  int rank_ = 0, world_ = 1;
};

}  // namespace gta::dist
