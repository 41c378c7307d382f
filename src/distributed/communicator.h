// Collective communication between the ranks of a data-parallel run.
// One process per device; rank, world size and local rank come from the launcher's
// environment (mpirun: Open MPI's OMPI_COMM_WORLD_*, MPICH/Hydra's PMI_*, Slurm's SLURM_*).
// Implementations: LocalCommunicator (one process: every collective is the identity),
// MpiCommunicator (CPU tensors over MPI; mpi_communicator.h) and NcclCommunicator (CUDA tensors
// over NCCL, one process per GPU, bootstrapped through MPI; nccl_communicator.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace gta::dist {

struct LaunchEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string launcher = "none";  // "open-mpi", "pmi", "slurm" or "none"
};
// Reads the launcher's variables; a malformed value is an error naming the variable.
LaunchEnv detect_launch_env();
// Environment defaults for one rank of a multi-rank job (nothing for a single process); called
// first thing in main(), before the process creates a CUDA context. Values the user exported win.
void set_rank_env_defaults(const LaunchEnv& env);

// An asynchronous collective in flight.
class Work {
 public:
  virtual ~Work() = default;
  // Blocks until done; a collective that does not finish within the communicator's timeout
  // aborts every rank with an error (a peer crashed or stalled) instead of hanging.
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;
  virtual std::string name() const = 0;
  // In-place sum over ranks of a contiguous floating tensor.
  virtual std::unique_ptr<Work> all_reduce_async(const Tensor& t) = 0;
  void all_reduce(const Tensor& t) { all_reduce_async(t)->wait(); }
  // In-place mean over ranks of each of `ts` (one dtype, one device), as one operation. By
  // default the tensors are flattened into one buffer on their device, summed by
  // all_reduce_async and, in wait(), divided by the world size and copied back (communicator.cpp);
  // NCCL overrides it with one group of in-place averaging all-reduces, which copies nothing.
  virtual std::unique_ptr<Work> all_reduce_mean_async(const std::vector<Tensor>& ts);
  // Sum and maximum of one number over ranks.
  virtual double sum(double v) = 0;
  virtual double max(double v) = 0;
  // Every rank receives root's bytes of a contiguous tensor.
  virtual void broadcast(const Tensor& t, int root) = 0;
  // ZeRO-1's collectives (dist/zero1.h). Both tensors contiguous, of one dtype and device; `in`
  // has world_size() times the elements of `out` (check_scatter_shapes).
  // out = part r (this rank's) of the mean over ranks of `in`.
  virtual void reduce_scatter_mean(const Tensor& in, const Tensor& out) = 0;
  // out = every rank's `in`, concatenated in rank order (the shapes the other way round: `out`
  // has world_size() times the elements of `in`).
  virtual void all_gather(const Tensor& in, const Tensor& out) = 0;
  virtual void barrier() = 0;
  // The barrier after work rank 0 does alone (its evaluation or checkpoint write, which the
  // others wait for): on the other ranks bounded by `timeout_s` (dist.rank0_timeout_s) rather
  // than the collective timeout, and a timeout names `what` was being waited for; on rank 0,
  // which arrives last, by the collective timeout (a rank missing then crashed or stalled).
  virtual void barrier_within(double timeout_s, const std::string& what) = 0;
  // Ends every rank of the job with `message` (used when this rank hits a fatal error).
  [[noreturn]] virtual void abort(const std::string& message) = 0;
};

// `what` (a collective) on `whole` (world parts) and `part`: contiguous, one dtype and device, and
// whole.numel() == world * part.numel(); otherwise an error naming both.
void check_scatter_shapes(const char* what, const Tensor& whole, const Tensor& part, int world);

// The communicator for this process: local for a single process; with several ranks NCCL when
// the model computes on a GPU (`compute_device` must then be cuda:<local rank>: one process per
// GPU), MPI otherwise. `timeout_s` (dist.timeout_s) bounds every collective.
std::unique_ptr<Communicator> make_communicator(const LaunchEnv& env, double timeout_s,
                                                Device compute_device = Device::cpu());

}  // namespace gta::dist
