#include "dist/grad_sync.h"

#include "core/error.h"
#include "core/strided.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/copy.h"
#endif

namespace gta::dist {

namespace {

#ifdef GTA_WITH_CUDA
// The bucket's gradients as flat pieces, or nothing when one of them is not contiguous (those
// take the copy-per-gradient path).
std::vector<kernels::FlatPiece> pieces_of(const std::vector<Tensor>& params, const std::vector<size_t>& members) {
  std::vector<kernels::FlatPiece> pieces;
  for (size_t i : members) {
    const Tensor& g = params[i].grad();
    if (!g.is_contiguous()) return {};
    pieces.push_back({g.raw_data(), g.numel()});
  }
  return pieces;
}
#endif

}  // namespace

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
  int64_t n = 0;
  for (size_t i : b.members) n += params_[i].numel();
  // Flattened on the gradients' own device (a GPU bucket never leaves the GPU): copy_strided
  // dispatches on the device and, on a GPU, queues its copies on the compute stream, which the
  // communicator orders its collective behind.
  const Tensor& first = params_[b.members[0]].grad();
  b.flat = Tensor::empty({n}, first.dtype(), first.device());
#ifdef GTA_WITH_CUDA
  if (auto pieces = first.device().is_cuda() ? pieces_of(params_, b.members) : std::vector<kernels::FlatPiece>{};
      !pieces.empty()) {  // one launch for the whole bucket rather than a copy per gradient
    cuda::DeviceGuard guard(first.device().index);
    kernels::gather_pieces(first.dtype(), b.flat.raw_data(), pieces);
    b.work = comm_.all_reduce_async(b.flat);
    in_flight_.push_back(std::move(b));
    return;
  }
#endif
  int64_t off = 0;
  for (size_t i : b.members) {
    const Tensor g = params_[i].grad();
    copy_strided(b.flat.slice(0, off, off + g.numel()).reshape(g.shape()), g);
    off += g.numel();
  }
  b.work = comm_.all_reduce_async(b.flat);
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
  const double inv_world = 1.0 / comm_.world_size();
  for (Bucket& b : in_flight_) {
    b.work->wait();  // on a GPU: also orders the compute stream behind the collective
#ifdef GTA_WITH_CUDA
    if (auto pieces = b.flat.device().is_cuda() ? pieces_of(params_, b.members) : std::vector<kernels::FlatPiece>{};
        !pieces.empty()) {  // average and write back in one launch
      cuda::DeviceGuard guard(b.flat.device().index);
      kernels::scatter_pieces(b.flat.dtype(), b.flat.raw_data(), pieces, inv_world);
      continue;
    }
#endif
    Tensor avg = ops::scale(b.flat, inv_world);  // on the bucket's device
    int64_t off = 0;
    for (size_t i : b.members) {
      Tensor g = params_[i].grad();
      copy_strided(g, avg.slice(0, off, off + g.numel()).reshape(g.shape()));
      off += g.numel();
    }
  }
  buckets_last_step_ = static_cast<int64_t>(in_flight_.size());
  in_flight_.clear();
  sync_ = false;
}

}  // namespace gta::dist
