// Softmax over the last dimension: y = exp(x - max) / sum exp(x - max).
// Backward: dx = y * (g - sum(g * y)).
#include <cmath>

#include "autograd/tape.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/softmax.h"
#endif

namespace gta::ops {

Tensor softmax(const Tensor& x) {
#ifdef GTA_WITH_CUDA
  if (x.device().is_cuda()) {
    const Device dev = x.device();
    cuda::DeviceGuard guard(dev.index);
    const int64_t d = x.size(-1), rows = x.numel() / std::max<int64_t>(d, 1);
    Tensor xc = x.contiguous().detach();
    Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
    kernels::softmax_forward(x.dtype(), y.raw_data(), xc.raw_data(), rows, d);
    // The backward recomputes y in fp32 from x (kernels/softmax.cu says why).
    autograd::record(y, "softmax", {x}, [xc, rows, d, dev](const Tensor& g) -> std::vector<Tensor> {
      cuda::DeviceGuard guard(dev.index);
      Tensor gc = g.contiguous();
      Tensor dx = Tensor::empty(g.shape(), g.dtype(), dev);
      kernels::softmax_backward(g.dtype(), dx.raw_data(), gc.raw_data(), xc.raw_data(), rows, d);
      return {dx};
    });
    return y;
  }
#endif
  require_cpu("softmax", x);
  const int64_t d = x.size(-1), rows = x.numel() / std::max<int64_t>(d, 1);
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_float("softmax", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = xc.data<T>();
    T* py = y.data<T>();
#pragma omp parallel for schedule(static) if (rows * d > 16384)
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = px + r * d;
      T* yr = py + r * d;
      T mx = xr[0];
      for (int64_t j = 1; j < d; ++j) mx = std::max(mx, xr[j]);
      T s = 0;
      for (int64_t j = 0; j < d; ++j) s += (yr[j] = std::exp(xr[j] - mx));
      for (int64_t j = 0; j < d; ++j) yr[j] /= s;
    }
  });
  Tensor yd = y.detach();
  autograd::record(y, "softmax", {x}, [yd, rows, d](const Tensor& g) -> std::vector<Tensor> {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(g.shape(), g.dtype());
    dispatch_float("softmax_backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T *pg = gc.data<T>(), *py = yd.data<T>();
      T* pd = dx.data<T>();
#pragma omp parallel for schedule(static) if (rows * d > 16384)
      for (int64_t r = 0; r < rows; ++r) {
        T dot = 0;
        for (int64_t j = 0; j < d; ++j) dot += pg[r * d + j] * py[r * d + j];
        for (int64_t j = 0; j < d; ++j) pd[r * d + j] = py[r * d + j] * (pg[r * d + j] - dot);
      }
    });
    return {dx};
  });
  return y;
}

}  // namespace gta::ops
