// RMSNorm over the last dimension:
//   r = 1/sqrt(mean(x^2) + eps),  xhat = x r,  y = xhat * w
// Backward, with gh = g * w:
//   dx = r * (gh - xhat * mean(gh * xhat)),   dw = sum over rows of g * xhat
#include <cmath>

#include "autograd/node.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/rms_norm.h"
#endif

namespace gta::ops {

#ifdef GTA_WITH_CUDA
namespace {
// GPU path: f32/bf16, fp32 statistics; rstd saved as f32 [rows] (see kernels/rms_norm.cu).
Tensor rms_norm_cuda(const Tensor& x, const Tensor& w, double eps) {
  require_same_dtype("rms_norm", x, w);
  GTA_CHECK(w.device() == x.device(), "rms_norm: weight on {}, input on {}", w.device().str(), x.device().str());
  const int64_t d = x.size(-1);
  GTA_CHECK(w.ndim() == 1 && w.size(0) == d, "rms_norm: weight {} for input {}", w.str(), x.str());
  const Device dev = x.device();
  cuda::DeviceGuard guard(dev.index);
  const int64_t rows = x.numel() / std::max<int64_t>(d, 1);
  Tensor xc = x.contiguous().detach(), wc = w.contiguous().detach();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor rstd = Tensor::empty({rows}, DType::f32, dev);
  kernels::rms_norm_forward(x.dtype(), y.raw_data(), rstd.data<float>(), xc.raw_data(), wc.raw_data(), rows, d, eps);
  const bool gw = w.requires_grad();
  autograd::record(y, "rms_norm", {x, w}, [xc, wc, rstd, rows, d, gw, dev](const Tensor& g) {
    cuda::DeviceGuard guard(dev.index);
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(xc.shape(), g.dtype(), dev);
    Tensor dw, scratch;
    if (gw) {
      dw = Tensor::empty({d}, g.dtype(), dev);
      scratch = Tensor::empty({std::max<int64_t>(1, kernels::rms_norm_backward_scratch(rows, d))}, DType::f32, dev);
    }
    kernels::rms_norm_backward(g.dtype(), dx.raw_data(), gw ? dw.raw_data() : nullptr,
                               gw ? scratch.data<float>() : nullptr, gc.raw_data(), xc.raw_data(), wc.raw_data(),
                               rstd.data<float>(), rows, d);
    return std::vector<Tensor>{dx, dw};
  });
  return y;
}
}  // namespace
#endif

Tensor rms_norm(const Tensor& x, const Tensor& w, double eps) {
#ifdef GTA_WITH_CUDA
  if (x.device().is_cuda()) return rms_norm_cuda(x, w, eps);
#endif
  require_cpu("rms_norm", x);
  require_cpu("rms_norm", w);
  require_same_dtype("rms_norm", x, w);
  const int64_t d = x.size(-1);
  GTA_CHECK(w.ndim() == 1 && w.size(0) == d, "rms_norm: weight {} for input {}", w.str(), x.str());
  const int64_t rows = x.numel() / std::max<int64_t>(d, 1);
  Tensor xc = x.contiguous().detach(), wc = w.contiguous().detach();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor rstd = Tensor::empty({rows}, x.dtype());
  dispatch_float("rms_norm", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *px = xc.data<T>(), *pw = wc.data<T>();
    T *py = y.data<T>(), *pr = rstd.data<T>();
#pragma omp parallel for schedule(static) if (rows * d > 16384)
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = px + r * d;
      double ss = 0;  // accumulate in double: the statistic is cheap and precision matters
      for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(xr[j]) * xr[j];
      T inv = static_cast<T>(1.0 / std::sqrt(ss / d + eps));
      pr[r] = inv;
      for (int64_t j = 0; j < d; ++j) py[r * d + j] = xr[j] * inv * pw[j];
    }
  });
  bool gw = w.requires_grad();
  autograd::record(y, "rms_norm", {x, w}, [xc, wc, rstd, rows, d, gw](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(xc.shape(), g.dtype());
    Tensor dw;
    dispatch_float("rms_norm_backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *pg = gc.data<T>(), *px = xc.data<T>(), *pw = wc.data<T>(), *pr = rstd.data<T>();
      T* pdx = dx.data<T>();
#pragma omp parallel for schedule(static) if (rows * d > 16384)
      for (int64_t r = 0; r < rows; ++r) {
        const T *gr = pg + r * d, *xr = px + r * d;
        const T inv = pr[r];
        double dot = 0;  // sum_j gh_j * xhat_j
        for (int64_t j = 0; j < d; ++j) dot += static_cast<double>(gr[j] * pw[j]) * (xr[j] * inv);
        const T m = static_cast<T>(dot / d);
        for (int64_t j = 0; j < d; ++j) pdx[r * d + j] = inv * (gr[j] * pw[j] - xr[j] * inv * m);
      }
      if (gw) {
        dw = Tensor::empty({d}, g.dtype());
        reduce_rows<T>(rows, d, dw.data<T>(),
                       [pg, px, pr, d](int64_t r, int64_t j) { return pg[r * d + j] * px[r * d + j] * pr[r]; });
      }
    });
    return std::vector<Tensor>{dx, dw};
  });
  return y;
}

}  // namespace gta::ops
