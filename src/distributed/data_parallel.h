// The optimizer side of one data-parallel training step, shared by `gta train` and `gta bench
// train`: averaging the gradients over the ranks, clipping their global norm and the AdamW update,
// with the AdamW state replicated on every rank or sharded (ZeRO-1). With W ranks:
//
//   plain    a GradSync (grad_sync.h) averages the gradients, g = sum over ranks / W, in buckets
//            that gradient-ready hooks start while the step's last backward runs; every rank then
//            clips all gradients and updates all parameters, identically.
//   ZeRO-1   (zero1 and W > 1; zero1.h) after the last backward the gradients are reduce-scattered
//            to their owners; each rank clips its own (the norm summed over ranks) and updates the
//            parameters it owns, and every rank then receives them all (all-gather).
//
// A step: zero_grad; per micro-batch, forward, sync_next_backward(last micro-batch), backward;
// then sync_grads(), clip_grad_norm(), update(lr). On one process it is plain training: nothing is
// communicated.
#pragma once
#include <optional>

#include "config/config.h"
#include "distributed/communicator.h"
#include "distributed/grad_sync.h"
#include "distributed/zero1.h"
#include "optim/adamw.h"

namespace gta::dist {

class DataParallelStep {
 public:
  // `params`: every parameter of the model, in the same order on every rank. `zero1` shards the
  // AdamW state when there are several ranks; `bucket_mb` sizes plain data parallelism's buckets.
  DataParallelStep(Communicator& comm, const optim::NamedTensors& params, const config::OptimConfig& cfg, bool zero1,
                   double bucket_mb);
  DataParallelStep(const DataParallelStep&) = delete;
  DataParallelStep& operator=(const DataParallelStep&) = delete;

  bool zero1() const { return zero1_.has_value(); }
  // This rank's AdamW (under ZeRO-1 over the parameters it owns only).
  optim::AdamW& optimizer() { return opt_; }

  // Whether the coming backward's gradients are the ones averaged over ranks: the step's last
  // micro-batch (earlier micro-batches only accumulate locally). ZeRO-1 ignores it: it
  // communicates in sync_grads() alone.
  void sync_next_backward(bool on);
  // After the step's last backward: every gradient (ZeRO-1: every owned gradient) becomes its
  // mean over ranks. Collective.
  void sync_grads();
  // The global gradient norm before clipping; when max_norm > 0 and the norm exceeds it, the
  // gradients this rank updates are scaled by max_norm / norm. Collective under ZeRO-1.
  double clip_grad_norm(double max_norm);
  // One AdamW update at learning rate `lr`; under ZeRO-1 every rank then receives the parameters
  // their owners updated. Collective under ZeRO-1.
  void update(double lr);

  // For checkpoints: the full optimizer state (under ZeRO-1 gathered to rank 0, the other ranks
  // getting only the step count; collective), and the part of a full state (a checkpoint's) this
  // rank's AdamW loads.
  optim::AdamWState full_state();
  optim::AdamWState local_state(const optim::AdamWState& full) const;

 private:
  const optim::NamedTensors params_;
  std::optional<Zero1> zero1_;
  optim::AdamW opt_;
  std::optional<GradSync> grad_sync_;  // plain data parallelism
};

}  // namespace gta::dist
