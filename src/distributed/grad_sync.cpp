#include "distributed/grad_sync.h"

#include "core/error.h"

namespace gta::dist {

GradSync::GradSync(Communicator& comm, const std::vector<std::pair<std::string, Tensor>>& params, double bucket_mb)
    : comm_(comm), bucket_bytes_(static_cast<int64_t>(bucket_mb * 1024 * 1024)), alive_(std::make_shared<bool>(true)) {
  for (const auto& [name, p] : params) {
    const size_t index = params_.size();
    params_.push_back(p);
    std::weak_ptr<bool> alive = alive_;
    Tensor(p).register_grad_ready_hook([this, index, alive](Tensor&) {
      if (alive.lock()) on_ready(index);
    });
  }
}

GradSync::~GradSync() { *alive_ = false; }

void GradSync::on_ready(size_t index) {
  if (!sync_ || comm_.world_size() == 1) return;
  // A bucket holds one dtype on one device: a gradient of another kind closes the open bucket.
  if (!open_.empty()) {
    const Tensor& g = params_[index].grad();
    const Tensor& o = params_[open_.front()].grad();
    if (g.dtype() != o.dtype() || g.device() != o.device()) launch_open_bucket();
  }
  open_.push_back(index);
  open_bytes_ += static_cast<int64_t>(params_[index].nbytes());
  if (open_bytes_ >= bucket_bytes_) launch_open_bucket();
}

void GradSync::launch_open_bucket() {
  if (open_.empty()) return;
  Bucket b;
  b.members = std::move(open_);
  open_.clear();
  open_bytes_ = 0;
  std::vector<Tensor> grads;
  for (size_t i : b.members) grads.push_back(params_[i].grad());
  // Queued behind backward's work so far (on a GPU: ordered after the compute stream's kernels),
  // averaged in place on the gradients' own device.
  b.work = comm_.all_reduce_mean_async(grads);
  in_flight_.push_back(std::move(b));
}

void GradSync::finish() {
  if (comm_.world_size() == 1) return;
  GTA_CHECK(sync_, "GradSync::finish() without a synchronising backward pass");
  launch_open_bucket();
  size_t reduced = 0;
  for (const Bucket& b : in_flight_) reduced += b.members.size();
  GTA_CHECK(reduced == params_.size(), "data parallel: {} of {} parameters received a gradient this step; every "
            "parameter must take part in the loss on every rank", reduced, params_.size());
  // On a GPU, wait() also orders the compute stream behind the collective.
  for (Bucket& b : in_flight_) b.work->wait();
  buckets_last_step_ = static_cast<int64_t>(in_flight_.size());
  in_flight_.clear();
  sync_ = false;
}

}  // namespace gta::dist
