// Communicator::all_reduce_mean_async's default: flatten, sum, divide, copy back.
#include "distributed/communicator.h"

#include "core/error.h"
#include "ops/copy.h"
#include "ops/ops.h"

namespace gta::dist {

namespace {

// The sum of the flattened tensors is in flight; wait() writes flat / world back into them.
class FlatMeanWork : public Work {
 public:
  FlatMeanWork(std::vector<Tensor> ts, Tensor flat, std::unique_ptr<Work> sum, double inv_world)
      : ts_(std::move(ts)), flat_(std::move(flat)), sum_(std::move(sum)), inv_world_(inv_world) {}
  void wait() override {
    if (!sum_) return;
    sum_->wait();
    sum_.reset();
    const Tensor avg = ops::scale(flat_, inv_world_);  // on the tensors' device
    int64_t off = 0;
    for (Tensor& t : ts_) {
      copy_strided(t, avg.slice(0, off, off + t.numel()).reshape(t.shape()));
      off += t.numel();
    }
  }

 private:
  std::vector<Tensor> ts_;
  Tensor flat_;
  std::unique_ptr<Work> sum_;
  double inv_world_;
};

}  // namespace

void check_scatter_shapes(const char* what, const Tensor& whole, const Tensor& part, int world) {
  GTA_CHECK(whole.dtype() == part.dtype() && whole.device() == part.device() && whole.is_contiguous() &&
                part.is_contiguous() && whole.numel() == world * part.numel(),
            "{} over {} ranks needs contiguous tensors of one dtype and device, the whole {} times the part: got {} "
            "and {}",
            what, world, world, whole.str(), part.str());
}

std::unique_ptr<Work> Communicator::all_reduce_mean_async(const std::vector<Tensor>& ts) {
  GTA_CHECK(!ts.empty(), "all-reduce of an empty list of tensors");
  const Tensor& first = ts.front();
  int64_t n = 0;
  for (const Tensor& t : ts) {
    GTA_CHECK(t.dtype() == first.dtype() && t.device() == first.device(),
              "all-reduce of several tensors needs one dtype and one device: {} and {}", first.str(), t.str());
    n += t.numel();
  }
  Tensor flat = Tensor::empty({n}, first.dtype(), first.device());
  int64_t off = 0;
  for (const Tensor& t : ts) {
    copy_strided(flat.slice(0, off, off + t.numel()).reshape(t.shape()), t);
    off += t.numel();
  }
  std::unique_ptr<Work> sum = all_reduce_async(flat);
  return std::make_unique<FlatMeanWork>(ts, std::move(flat), std::move(sum), 1.0 / world_size());
}

}  // namespace gta::dist
