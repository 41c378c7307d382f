// Embedding lookup: out[..., :] = W[ids[...], :].  dW[v] = sum of g rows whose id is v.
#include "autograd/tape.h"
#include "core/strided.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/embedding.h"
#endif

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
#ifdef GTA_WITH_CUDA
// GPU path. The ids are read on the host once (range check, and the grouping by id that makes the
// backward deterministic: a stable counting sort giving, per distinct id, its token positions in
// increasing order), uploaded as one i64 buffer [rows | offsets | perm] kept for the backward.
Tensor embedding_cuda(const Tensor& weight, const Tensor& ids) {
  GTA_CHECK(weight.ndim() == 2, "embedding: weight must be [vocab, d], got {}", weight.str());
  GTA_CHECK(ids.device() == weight.device() || ids.device().is_cpu(), "embedding: ids on {}, weight on {}",
            ids.device().str(), weight.device().str());
  const Device dev = weight.device();
  cuda::DeviceGuard guard(dev.index);
  const int64_t vocab = weight.size(0), d = weight.size(1);
  Tensor ids_host = ids.detach().to(Device::cpu());
  std::vector<int64_t> idx = read_ids(ids_host, vocab);
  const int64_t n = static_cast<int64_t>(idx.size());
  Shape shape = ids.shape();
  shape.push_back(d);
  Tensor w = weight.contiguous().detach();
  Tensor out = Tensor::empty(shape, weight.dtype(), dev);
  Tensor ids_dev = Tensor::from_vector(idx, {n}).to(dev);
  kernels::embedding_forward(weight.dtype(), out.raw_data(), w.raw_data(), ids_dev.raw_data(), true, n, d);
  if (!autograd::needs_grad({weight})) return out;
  // Stable counting sort by id.
  std::vector<int64_t> count(static_cast<size_t>(vocab) + 1, 0);
  for (int64_t v : idx) ++count[v + 1];
  std::vector<int64_t> rows, offsets{0};
  for (int64_t v = 0; v < vocab; ++v)
    if (count[v + 1]) {
      rows.push_back(v);
      offsets.push_back(offsets.back() + count[v + 1]);
    }
  for (int64_t v = 0; v < vocab; ++v) count[v + 1] += count[v];
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) perm[count[idx[r]]++] = r;
  const int64_t n_rows = static_cast<int64_t>(rows.size());
  std::vector<int64_t> csr;
  csr.reserve(rows.size() + offsets.size() + perm.size());
  csr.insert(csr.end(), rows.begin(), rows.end());
  csr.insert(csr.end(), offsets.begin(), offsets.end());
  csr.insert(csr.end(), perm.begin(), perm.end());
  Tensor csr_dev = Tensor::from_vector(csr, {static_cast<int64_t>(csr.size())}).to(dev);
  Shape wshape = weight.shape();
  autograd::record(out, "embedding", {weight}, [csr_dev, n_rows, wshape, d, dev](const Tensor& g) -> std::vector<Tensor> {
    cuda::DeviceGuard guard(dev.index);
    Tensor gc = g.contiguous();
    Tensor dw = Tensor::zeros(wshape, g.dtype(), dev);
    const int64_t* base = csr_dev.data<int64_t>();
    kernels::embedding_backward(g.dtype(), dw.raw_data(), gc.raw_data(), base, base + n_rows, base + 2 * n_rows + 1,
                                n_rows, d);
    return {dw};
  });
  return out;
}
#endif

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& ids) {
#ifdef GTA_WITH_CUDA
  if (weight.device().is_cuda()) return embedding_cuda(weight, ids);
#endif
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
