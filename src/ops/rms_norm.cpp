// RMSNorm over the last dimension:
//   r = 1/sqrt(mean(x^2) + eps),  xhat = x r,  y = xhat * w
// Backward, with gh = g * w:
//   dx = r * (gh - xhat * mean(gh * xhat)),   dw = sum over rows of g * xhat
// Fused with the residual add before it (the pre-norm decoder adds every branch into the residual
// stream and normalises the sum next): add_rms_norm(x, res, w) = {h = x + res, rms_norm(h, w)},
// one pass over x and res. Its backward gets the gradients of both outputs and forms
//   dh = (dy through the norm, the dx above with x = h) + (the gradient of h itself)
// in the norm's dx pass; dx = dres = dh, and dw as above.
// CPU: f32/f64, statistics in double, r saved in the input's dtype. CUDA (kernels/rms_norm.cu):
// f32/bf16, fp32 statistics, r saved as f32 [rows].
#include <cmath>
#include <utility>

#include "autograd/tape.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/rms_norm.h"
#endif

namespace gta::ops {

namespace {

// Checks a norm of x over its last dim with weight w; returns the number of rows.
int64_t check_norm(const char* op, const Tensor& x, const Tensor& w) {
  require_same_dtype(op, x, w);
  GTA_CHECK(w.device() == x.device(), "{}: weight on {}, input on {}", op, w.device().str(), x.device().str());
#ifdef GTA_WITH_CUDA
  if (!x.device().is_cuda()) require_cpu(op, x);
#else
  require_cpu(op, x);
#endif
  const int64_t d = x.size(-1);
  GTA_CHECK(w.ndim() == 1 && w.size(0) == d, "{}: weight {} for input {}", op, w.str(), x.str());
  return x.numel() / std::max<int64_t>(d, 1);
}

// The saved statistic r: f32 on the GPU, the input's dtype on the CPU.
Tensor empty_rstd(const Tensor& x, int64_t rows) {
  return Tensor::empty({rows}, x.device().is_cuda() ? DType::f32 : x.dtype(), x.device());
}

// One row on the CPU: y = x r w; returns r (the statistic accumulates in double: it is cheap and
// precision matters).
template <typename T>
T norm_row(const T* x, const T* w, T* y, int64_t d, double eps) {
  double ss = 0;
  for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(x[j]) * x[j];
  const T inv = static_cast<T>(1.0 / std::sqrt(ss / d + eps));
  for (int64_t j = 0; j < d; ++j) y[j] = x[j] * inv * w[j];
  return inv;
}

// The backward of y = rms_norm(x) w from dy = g, with xc, wc, rstd saved by the forward (x
// contiguous): {dx, dw}; dw only when gw; dx_add, when defined, is added to dx in the same pass.
std::vector<Tensor> norm_backward(const Tensor& g, const Tensor& xc, const Tensor& wc, const Tensor& rstd, bool gw,
                                  const Tensor& dx_add) {
  const int64_t d = xc.size(-1), rows = xc.numel() / std::max<int64_t>(d, 1);
  const Device dev = g.device();
  Tensor gc = g.contiguous(), ac = dx_add.defined() ? dx_add.contiguous() : Tensor();
  Tensor dx = Tensor::empty(xc.shape(), g.dtype(), dev);
  Tensor dw = gw ? Tensor::empty({d}, g.dtype(), dev) : Tensor();
#ifdef GTA_WITH_CUDA
  if (dev.is_cuda()) {
    cuda::DeviceGuard guard(dev.index);
    Tensor scratch;
    if (gw)
      scratch = Tensor::empty({std::max<int64_t>(1, kernels::rms_norm_backward_scratch(rows, d))}, DType::f32, dev);
    kernels::rms_norm_backward(g.dtype(), dx.raw_data(), gw ? dw.raw_data() : nullptr,
                               gw ? scratch.data<float>() : nullptr, gc.raw_data(), xc.raw_data(), wc.raw_data(),
                               rstd.data<float>(), rows, d, ac.defined() ? ac.raw_data() : nullptr);
    return {dx, dw};
  }
#endif
  dispatch_float("rms_norm_backward", g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *pg = gc.data<T>(), *px = xc.data<T>(), *pw = wc.data<T>(), *pr = rstd.data<T>();
    const T* pa = ac.defined() ? ac.data<T>() : nullptr;
    T* pdx = dx.data<T>();
#pragma omp parallel for schedule(static) if (rows * d > 16384)
    for (int64_t r = 0; r < rows; ++r) {
      const T *gr = pg + r * d, *xr = px + r * d;
      const T inv = pr[r];
      double dot = 0;  // sum_j gh_j * xhat_j
      for (int64_t j = 0; j < d; ++j) dot += static_cast<double>(gr[j] * pw[j]) * (xr[j] * inv);
      const T m = static_cast<T>(dot / d);
      for (int64_t j = 0; j < d; ++j) {
        const T v = inv * (gr[j] * pw[j] - xr[j] * inv * m);
        pdx[r * d + j] = pa ? v + pa[r * d + j] : v;
      }
    }
    if (gw)
      reduce_rows<T>(rows, d, dw.data<T>(),
                     [pg, px, pr, d](int64_t r, int64_t j) { return pg[r * d + j] * px[r * d + j] * pr[r]; });
  });
  return {dx, dw};
}

}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& w, double eps) {
  const int64_t rows = check_norm("rms_norm", x, w), d = x.size(-1);
  Tensor xc = x.contiguous().detach(), wc = w.contiguous().detach();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device()), rstd = empty_rstd(x, rows);
#ifdef GTA_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::DeviceGuard guard(x.device().index);
    kernels::rms_norm_forward(x.dtype(), y.raw_data(), rstd.data<float>(), xc.raw_data(), wc.raw_data(), rows, d, eps);
  }
#endif
  if (x.device().is_cpu())
    dispatch_float("rms_norm", x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *px = xc.data<T>(), *pw = wc.data<T>();
      T *py = y.data<T>(), *pr = rstd.data<T>();
#pragma omp parallel for schedule(static) if (rows * d > 16384)
      for (int64_t r = 0; r < rows; ++r) pr[r] = norm_row(px + r * d, pw, py + r * d, d, eps);
    });
  const bool gw = w.requires_grad();
  autograd::record(y, "rms_norm", {x, w}, [xc, wc, rstd, gw](const Tensor& g) {
    return norm_backward(g, xc, wc, rstd, gw, Tensor());
  });
  return y;
}

std::pair<Tensor, Tensor> add_rms_norm(const Tensor& x, const Tensor& res, const Tensor& w, double eps) {
  GTA_CHECK(res.shape() == x.shape() && res.device() == x.device(), "add_rms_norm: {} + {}: the two must match",
            x.str(), res.str());
  require_same_dtype("add_rms_norm", x, res);
  const int64_t rows = check_norm("add_rms_norm", x, w), d = x.size(-1);
  Tensor xc = x.contiguous(), rc = res.contiguous(), wc = w.contiguous().detach();
  Tensor h = Tensor::empty(x.shape(), x.dtype(), x.device()), y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor rstd = empty_rstd(x, rows);
#ifdef GTA_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::DeviceGuard guard(x.device().index);
    kernels::add_rms_norm_forward(x.dtype(), h.raw_data(), y.raw_data(), rstd.data<float>(), xc.raw_data(),
                                  rc.raw_data(), wc.raw_data(), rows, d, eps);
  }
#endif
  if (x.device().is_cpu())
    dispatch_float("add_rms_norm", x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *px = xc.data<T>(), *pres = rc.data<T>(), *pw = wc.data<T>();
      T *ph = h.data<T>(), *py = y.data<T>(), *pr = rstd.data<T>();
#pragma omp parallel for schedule(static) if (rows * d > 16384)
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = r * d; j < (r + 1) * d; ++j) ph[j] = px[j] + pres[j];
        pr[r] = norm_row(ph + r * d, pw, py + r * d, d, eps);
      }
    });
  const bool gw = w.requires_grad();
  Tensor hc = h.detach();  // saved as the norm's input; a handle on h itself would be a cycle
  autograd::record_outputs({&h, &y}, "add_rms_norm", {x, res, w},
                           [hc, wc, rstd, gw](const std::vector<Tensor>& g) -> std::vector<Tensor> {
                             const Tensor &dh_in = g[0], &dy = g[1];
                             if (!dy.defined()) return {dh_in, dh_in, Tensor()};
                             std::vector<Tensor> dxw = norm_backward(dy, hc, wc, rstd, gw, dh_in);
                             return {dxw[0], dxw[0], dxw[1]};
                           });
  return {h, y};
}

}  // namespace gta::ops
