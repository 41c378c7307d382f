#include "distributed/data_parallel.h"

#include "optim/clip.h"

namespace gta::dist {

DataParallelStep::DataParallelStep(Communicator& comm, const optim::NamedTensors& params,
                                   const config::OptimConfig& cfg, bool zero1, double bucket_mb)
    : params_(params),
      zero1_(zero1 && comm.world_size() > 1 ? std::optional<Zero1>(std::in_place, comm, params_)
                                            : std::optional<Zero1>()),
      opt_(zero1_ ? zero1_->owned_params() : params_, cfg) {
  if (!zero1_) grad_sync_.emplace(comm, params_, bucket_mb);
}

void DataParallelStep::sync_next_backward(bool on) {
  if (grad_sync_) grad_sync_->set_sync(on);
}

void DataParallelStep::sync_grads() {
  if (zero1_) zero1_->reduce_scatter_grads();
  else grad_sync_->finish();
}

double DataParallelStep::clip_grad_norm(double max_norm) {
  return zero1_ ? zero1_->clip_grad_norm(max_norm) : optim::clip_grad_norm(params_, max_norm);
}

void DataParallelStep::update(double lr) {
  opt_.step(lr);
  if (zero1_) zero1_->all_gather_params();
}

optim::AdamWState DataParallelStep::full_state() { return zero1_ ? zero1_->gather_state(opt_) : opt_.state(); }

optim::AdamWState DataParallelStep::local_state(const optim::AdamWState& full) const {
  return zero1_ ? zero1_->owned_state(full) : full;
}

}  // namespace gta::dist
