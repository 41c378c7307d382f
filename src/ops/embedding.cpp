// Embedding lookup: out[..., :] = W[ids[...], :].  dW[v] = sum of g rows whose id is v.
#include "autograd/node.h"
#include "core/strided.h"
#include "ops/dispatch.h"
#include "ops/ops.h"

namespace gta::ops {

namespace {
std::vector<int64_t> read_ids(const Tensor& ids, int64_t vocab) {
  GTA_CHECK(ids.dtype() == DType::i32 || ids.dtype() == DType::i64, "embedding: ids must be i32 or i64, got {}",
            ids.str());
  Tensor c = ids.contiguous();
  std::vector<int64_t> out(ids.numel());
  for (int64_t i = 0; i < ids.numel(); ++i) {
    out[i] = ids.dtype() == DType::i32 ? c.data<int32_t>()[i] : c.data<int64_t>()[i];
    GTA_CHECK(out[i] >= 0 && out[i] < vocab, "embedding: token id {} out of range [0, {})", out[i], vocab);
  }
  return out;
}
}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  require_cpu("embedding", weight);
  require_cpu("embedding", ids);
  GTA_CHECK(weight.ndim() == 2, "embedding: weight must be [vocab, d], got {}", weight.str());
  const int64_t vocab = weight.size(0), d = weight.size(1);
  std::vector<int64_t> idx = read_ids(ids, vocab);
  Shape shape = ids.shape();
  shape.push_back(d);
  Tensor w = weight.contiguous().detach();
  Tensor out = Tensor::empty(shape, weight.dtype());
  const int64_t n = static_cast<int64_t>(idx.size());
  dispatch_float("embedding", weight.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pw = w.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (n * d > 32768)
    for (int64_t i = 0; i < n; ++i) std::copy_n(pw + idx[i] * d, d, po + i * d);
  });
  Shape wshape = weight.shape();
  autograd::record(out, "embedding", {weight}, [idx, wshape, d](const Tensor& g) -> std::vector<Tensor> {
    Tensor dw = Tensor::zeros(wshape, g.dtype());
    Tensor gc = g.contiguous();
    dispatch_float("embedding_backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* pg = gc.data<T>();
      T* pw = dw.data<T>();
      // Columns in parallel, rows in order: deterministic whatever the thread count.
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(idx.size()) * d > 32768)
      for (int64_t j0 = 0; j0 < d; j0 += 16)
        for (size_t i = 0; i < idx.size(); ++i)
          for (int64_t j = j0; j < std::min(d, j0 + 16); ++j) pw[idx[i] * d + j] += pg[i * d + j];
    });
    return {dw};
  });
  return out;
}

}  // namespace gta::ops
