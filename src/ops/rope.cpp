// Rotary position embedding, rotate-half (Llama/NeoX) convention, on the first rot_dim features
// of every head. With h = rot_dim/2, for i < h at position p and angle a = p * theta^(-2i/rot_dim):
//   y[i]   = x[i] cos a - x[i+h] sin a
//   y[i+h] = x[i+h] cos a + x[i] sin a
// Features from rot_dim on pass through. The backward is the inverse rotation (angle -a).
#include <cmath>

#include "autograd/tape.h"
#include "ops/decode_position.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/rope.h"
#endif

namespace gta::ops {

namespace {

// cos/sin table [T, rot_dim/2], computed in double.
std::vector<double> rope_table(int64_t T, int rot_dim, double theta, int64_t pos0) {
  const int h = rot_dim / 2;
  std::vector<double> tab(static_cast<size_t>(T * h * 2));
  for (int64_t t = 0; t < T; ++t)
    for (int i = 0; i < h; ++i) {
      double a = static_cast<double>(pos0 + t) * std::pow(theta, -2.0 * i / rot_dim);
      tab[(t * h + i) * 2] = std::cos(a);
      tab[(t * h + i) * 2 + 1] = std::sin(a);
    }
  return tab;
}

// direction +1 rotates forward, -1 applies the inverse rotation (for the gradient).
Tensor rotate(const Tensor& x, int rot_dim, const std::vector<double>& tab, double direction) {
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3);
  const int h = rot_dim / 2;
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_float("rope", x.dtype(), [&](auto tag) {
    using T_ = decltype(tag);
    const T_* px = xc.data<T_>();
    T_* py = y.data<T_>();
#pragma omp parallel for collapse(2) schedule(static) if (B * T * H * D > 16384)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t hh = 0; hh < H; ++hh) {
          const int64_t off = ((b * T + t) * H + hh) * D;
          const T_* xr = px + off;
          T_* yr = py + off;
          for (int i = 0; i < h; ++i) {
            const T_ c = static_cast<T_>(tab[(t * h + i) * 2]);
            const T_ s = static_cast<T_>(direction * tab[(t * h + i) * 2 + 1]);
            yr[i] = xr[i] * c - xr[i + h] * s;
            yr[i + h] = xr[i + h] * c + xr[i] * s;
          }
          for (int64_t j = rot_dim; j < D; ++j) yr[j] = xr[j];
        }
  });
  return y;
}

#ifdef GTA_WITH_CUDA
// GPU path (f32, bf16): the same rotation, cos/sin computed in double on the device.
// position: a device i32 [1] added to pos0 when the kernels run (decode_position.h), or undefined.
Tensor rotate_cuda(const Tensor& x, int rot_dim, double theta, int64_t pos0, bool inverse,
                   const Tensor& position = Tensor()) {
  cuda::DeviceGuard guard(x.device().index);
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  kernels::rope(x.dtype(), y.raw_data(), xc.raw_data(), x.size(0), x.size(1), x.size(2), x.size(3), rot_dim, theta,
                pos0, inverse, position.defined() ? position.data<int32_t>() : nullptr);
  return y;
}
#endif

}  // namespace

Tensor rope(const Tensor& x, int rot_dim, double theta, int64_t pos0) {
  GTA_CHECK(x.ndim() == 4, "rope: expected [B, T, heads, width], got {}", x.str());
  GTA_CHECK(rot_dim > 0 && rot_dim % 2 == 0 && rot_dim <= x.size(3), "rope: rotary dim {} must be even and <= {}",
            rot_dim, x.size(3));
#ifdef GTA_WITH_CUDA
  if (x.device().is_cuda()) {
    Tensor y = rotate_cuda(x.detach(), rot_dim, theta, pos0, false);
    autograd::record(y, "rope", {x}, [rot_dim, theta, pos0](const Tensor& g) -> std::vector<Tensor> {
      return {rotate_cuda(g, rot_dim, theta, pos0, true)};
    });
    return y;
  }
#endif
  require_cpu("rope", x);
  auto tab = std::make_shared<std::vector<double>>(rope_table(x.size(1), rot_dim, theta, pos0));
  Tensor y = rotate(x, rot_dim, *tab, 1.0);
  autograd::record(y, "rope", {x}, [tab, rot_dim](const Tensor& g) -> std::vector<Tensor> {
    return {rotate(g, rot_dim, *tab, -1.0)};
  });
  return y;
}

Tensor rope_at(const Tensor& x, int rot_dim, double theta, const Tensor& position) {
  GTA_CHECK(x.ndim() == 4 && rot_dim > 0 && rot_dim % 2 == 0 && rot_dim <= x.size(3),
            "rope_at: expected [B, T, heads, width] and an even rotary dim <= width, got {} and {}", x.str(), rot_dim);
  GTA_CHECK(x.device().is_cuda() && position.defined() && position.dtype() == DType::i32 && position.numel() == 1 &&
                position.device() == x.device(),
            "rope_at: needs x on a GPU and an i32 [1] position on its device, got {} and {}", x.str(),
            position.defined() ? position.str() : std::string("none"));
#ifdef GTA_WITH_CUDA
  return rotate_cuda(x.detach(), rot_dim, theta, 0, false, position);
#else
  return Tensor();
#endif
}

}  // namespace gta::ops
