// Concatenation along one dimension; its backward slices the gradient back apart. Works on any
// device: each input is a strided copy into its slice of the output (copy_strided dispatches).
#include "autograd/tape.h"
#include "ops/copy.h"
#include "ops/dispatch.h"
#include "ops/ops.h"

namespace gta::ops {

Tensor cat(const std::vector<Tensor>& xs, int dim) {
  GTA_CHECK(!xs.empty(), "cat: no tensors");
  const Tensor& first = xs[0];
  const int n = first.ndim();
  const int d = dim < 0 ? dim + n : dim;
  GTA_CHECK(d >= 0 && d < n, "cat: dimension {} out of range for {}", dim, first.str());
  Shape shape = first.shape();
  shape[d] = 0;
  std::vector<int64_t> starts;
  for (const Tensor& x : xs) {
    require_same_dtype("cat", first, x);
    GTA_CHECK(x.device() == first.device(), "cat: inputs on different devices: {} and {}", first.str(), x.str());
    GTA_CHECK(x.ndim() == n, "cat: {} and {} differ in rank", first.str(), x.str());
    for (int i = 0; i < n; ++i)
      GTA_CHECK(i == d || x.shape()[i] == first.shape()[i], "cat along {}: {} and {} differ in dim {}", d,
                first.str(), x.str(), i);
    starts.push_back(shape[d]);
    shape[d] += x.shape()[d];
  }
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());
  for (size_t i = 0; i < xs.size(); ++i)
    copy_strided(out.slice(d, starts[i], starts[i] + xs[i].shape()[d]), xs[i]);
  autograd::record(out, "cat", xs, [starts, d, shape](const Tensor& g) {
    std::vector<Tensor> grads;
    for (size_t i = 0; i < starts.size(); ++i) {
      int64_t end = i + 1 < starts.size() ? starts[i + 1] : shape[d];
      grads.push_back(g.slice(d, starts[i], end).contiguous());
    }
    return grads;
  });
  return out;
}

}  // namespace gta::ops
