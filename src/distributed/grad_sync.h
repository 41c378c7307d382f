// Data-parallel gradient averaging. Each parameter's gradient-ready hook (fired by backward as
// soon as that gradient is complete) adds it to the open bucket; a full bucket's averaging
// all-reduce (Communicator::all_reduce_mean_async: grad = sum over ranks / world, in place)
// starts while backward goes on with earlier layers. finish() starts the last bucket and waits
// for all of them.
// Only the last micro-step of gradient accumulation communicates (set_sync(true)); earlier
// micro-steps just accumulate locally.
// Device-agnostic: gradients stay on their device (CPU buckets go over MPI as one flattened
// message, GPU buckets over NCCL as one group of in-place all-reduces, without a host round
// trip); a bucket holds gradients of one dtype and one device.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace gta::dist {

class GradSync {
 public:
  GradSync(Communicator& comm, const std::vector<std::pair<std::string, Tensor>>& params, double bucket_mb);
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;
  ~GradSync();
  // Whether the coming backward pass is the one whose gradients are communicated.
  void set_sync(bool on) { sync_ = on; }
  void finish();
  int64_t buckets_last_step() const { return buckets_last_step_; }

 private:
  struct Bucket {
    std::vector<size_t> members;  // parameter indices, in ready order
    std::unique_ptr<Work> work;
  };
  void on_ready(size_t index);
  void launch_open_bucket();

  Communicator& comm_;
  std::vector<Tensor> params_;
  int64_t bucket_bytes_;
  bool sync_ = false;
  std::shared_ptr<bool> alive_;  // hooks outlive this object on the parameters: they check it
  std::vector<size_t> open_;
  int64_t open_bytes_ = 0;
  std::vector<Bucket> in_flight_;
  int64_t buckets_last_step_ = 0;
};

}  // namespace gta::dist
