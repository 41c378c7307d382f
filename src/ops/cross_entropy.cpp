// Fused log-softmax + negative log-likelihood, averaged over the counted targets:
//   loss = (1/N) sum_r [ lse(x_r) - x_r[t_r] ],  lse(x) = m + log sum_j exp(x_j - m)
// Backward: dx_r = g/N * (softmax(x_r) - onehot(t_r)); rows whose target is ignore_index get 0.
// The row statistics are accumulated in double so f32 logits still give an accurate loss.
#include <cmath>

#include "autograd/tape.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/cross_entropy.h"
#endif

namespace gta::ops {

#ifdef GTA_WITH_CUDA
namespace {
// GPU path (kernels/cross_entropy.cu): logits f32 or bf16 read in place, fp32 statistics; the loss
// is an f32 scalar on the device (also for bf16 logits). Nothing is read back to the host: a
// target out of range makes the loss NaN instead of an error (the CPU path checks on the host).
// The backward writes dlogits in the logits' dtype.
Tensor cross_entropy_cuda(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const Device dev = logits.device();
  cuda::DeviceGuard guard(dev.index);
  const int64_t N = logits.size(0), V = logits.size(1);
  Tensor xc = logits.contiguous().detach();
  Tensor tc = targets.detach().to(dev).contiguous();
  const bool i64 = tc.dtype() == DType::i64;
  Tensor stats = Tensor::empty({2}, DType::f32, dev);  // [loss, count]
  Tensor lse = Tensor::empty({std::max<int64_t>(N, 1)}, DType::f32, dev);
  Tensor row_loss = Tensor::empty({std::max<int64_t>(N, 1)}, DType::f32, dev);
  float* st = stats.data<float>();
  kernels::cross_entropy_forward(logits.dtype(), st, st + 1, lse.data<float>(), row_loss.data<float>(), xc.raw_data(),
                                 tc.raw_data(), i64, N, V, ignore_index);
  Tensor out = stats.slice(0, 0, 1).detach();
  Tensor count = stats.slice(0, 1, 2).detach();
  autograd::record(out, "cross_entropy", {logits}, [xc, tc, lse, count, i64, N, V, ignore_index, dev](const Tensor& g) {
    cuda::DeviceGuard guard(dev.index);
    Tensor gf = g.dtype() == DType::f32 ? g.contiguous() : g.to(DType::f32).contiguous();
    Tensor dx = Tensor::empty({N, V}, xc.dtype(), dev);
    kernels::cross_entropy_backward(xc.dtype(), dx.raw_data(), gf.data<float>(), count.data<float>(),
                                    lse.data<float>(), xc.raw_data(), tc.raw_data(), i64, N, V, ignore_index);
    return std::vector<Tensor>{dx};
  });
  return out;
}
}  // namespace
#endif

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
#ifdef GTA_WITH_CUDA
  if (logits.device().is_cuda()) {
    GTA_CHECK(logits.ndim() == 2, "cross_entropy: logits must be [N, vocab], got {}", logits.str());
    GTA_CHECK((targets.dtype() == DType::i32 || targets.dtype() == DType::i64) && targets.numel() == logits.size(0),
              "cross_entropy: targets {} for logits {}", targets.str(), logits.str());
    return cross_entropy_cuda(logits, targets, ignore_index);
  }
#endif
  require_cpu("cross_entropy", logits);
  require_cpu("cross_entropy", targets);
  GTA_CHECK(logits.ndim() == 2, "cross_entropy: logits must be [N, vocab], got {}", logits.str());
  GTA_CHECK((targets.dtype() == DType::i32 || targets.dtype() == DType::i64) && targets.numel() == logits.size(0),
            "cross_entropy: targets {} for logits {}", targets.str(), logits.str());
  const int64_t N = logits.size(0), V = logits.size(1);
  std::vector<int64_t> tgt(N);
  Tensor tc = targets.contiguous();
  int64_t count = 0;
  for (int64_t r = 0; r < N; ++r) {
    tgt[r] = targets.dtype() == DType::i32 ? tc.data<int32_t>()[r] : tc.data<int64_t>()[r];
    if (tgt[r] == ignore_index) continue;
    GTA_CHECK(tgt[r] >= 0 && tgt[r] < V, "cross_entropy: target {} out of range [0, {})", tgt[r], V);
    ++count;
  }
  Tensor xc = logits.contiguous().detach();
  auto lse = std::make_shared<std::vector<double>>(N);
  std::vector<double> row_loss(N, 0.0);
  dispatch_float("cross_entropy", logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = xc.data<T>();
#pragma omp parallel for schedule(static) if (N * V > 16384)
    for (int64_t r = 0; r < N; ++r) {
      const T* xr = px + r * V;
      double m = xr[0];
      for (int64_t j = 1; j < V; ++j) m = std::max(m, static_cast<double>(xr[j]));
      double s = 0;
      for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(xr[j]) - m);
      (*lse)[r] = m + std::log(s);
      if (tgt[r] != ignore_index) row_loss[r] = (*lse)[r] - static_cast<double>(xr[tgt[r]]);
    }
  });
  double total = 0;
  for (double l : row_loss) total += l;  // in row order: deterministic
  Tensor out = Tensor::from_doubles({count ? total / count : 0.0}, {1}, logits.dtype());
  autograd::record(out, "cross_entropy", {logits}, [xc, tgt, lse, count, ignore_index, N, V](const Tensor& g) {
    Tensor dx = Tensor::empty({N, V}, g.dtype());
    const double gs = count ? g.item() / count : 0.0;
    dispatch_float("cross_entropy_backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* px = xc.data<T>();
      T* pd = dx.data<T>();
#pragma omp parallel for schedule(static) if (N * V > 16384)
      for (int64_t r = 0; r < N; ++r) {
        T* dr = pd + r * V;
        if (tgt[r] == ignore_index) {
          std::fill_n(dr, V, T(0));
          continue;
        }
        const double L = (*lse)[r];
        for (int64_t j = 0; j < V; ++j) dr[j] = static_cast<T>(gs * std::exp(static_cast<double>(px[r * V + j]) - L));
        dr[tgt[r]] -= static_cast<T>(gs);
      }
    });
    return std::vector<Tensor>{dx};
  });
  return out;
}

}  // namespace gta::ops
