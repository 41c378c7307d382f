// Softmax over the last dimension on the GPU, one block per row, fp32 statistics:
//   forward   m = max x,  s = sum exp(x - m),  y = exp(x - m) / s
//             (one pass keeps a running (m, s) per thread, merged as (m, s) (+) (m', s') =
//              (M, s e^(m-M) + s' e^(m'-M)), then a pass writes y)
//   backward  dx = y (g - sum(g y)), y recomputed in fp32 from the saved input x (one more pass
//             over x; a stored bf16 y would carry its rounding into the cancelling g - sum(g y))
// Block reductions use a fixed tree: deterministic.
#include <cuda_bf16.h>

#include "core/cuda_context.h"
#include "kernels/row_reduce.cuh"
#include "kernels/softmax.h"

namespace gta::kernels {

namespace {



template <typename T>
__global__ void fwd_kernel(T* y, const T* x, int64_t d) {
  const T* xr = x + static_cast<int64_t>(blockIdx.x) * d;
  T* yr = y + static_cast<int64_t>(blockIdx.x) * d;
  float m = -INFINITY, s = 0.f;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) lse_merge(m, s, ld(xr + c), 1.f);
  block_lse(m, s);
  const float inv = 1.f / s;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) st(yr + c, expf(ld(xr + c) - m) * inv);
}

// y is recomputed in fp32 from x (the saved input) rather than read back from a stored (possibly
// bf16) output: g - sum(g y) cancels, and a bf16-rounded y would feed its rounding into it.
template <typename T>
__global__ void bwd_kernel(T* dx, const T* g, const T* x, int64_t d) {
  const int64_t off = static_cast<int64_t>(blockIdx.x) * d;
  float m = -INFINITY, s = 0.f;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) lse_merge(m, s, ld(x + off + c), 1.f);
  block_lse(m, s);
  const float inv = 1.f / s;
  float dot = 0.f;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) dot = fmaf(ld(g + off + c), expf(ld(x + off + c) - m) * inv, dot);
  dot = block_sum(dot);
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    const float y = expf(ld(x + off + c) - m) * inv;
    st(dx + off + c, y * (ld(g + off + c) - dot));
  }
}

int threads_for(int64_t d) { return d >= 1024 ? 512 : d >= 256 ? 256 : 128; }

template <typename T>
void fwd_t(void* y, const void* x, int64_t rows, int64_t d) {
  if (rows == 0 || d == 0) return;
  GTA_CHECK(rows < (1ll << 31), "softmax (CUDA): too many rows ({})", rows);
  fwd_kernel<T><<<static_cast<unsigned>(rows), threads_for(d), 0, cuda::current_stream()>>>(
      static_cast<T*>(y), static_cast<const T*>(x), d);
  GTA_CUDA_CHECK_LAUNCH();
}

template <typename T>
void bwd_t(void* dx, const void* g, const void* x, int64_t rows, int64_t d) {
  if (rows == 0 || d == 0) return;
  GTA_CHECK(rows < (1ll << 31), "softmax (CUDA): too many rows ({})", rows);
  bwd_kernel<T><<<static_cast<unsigned>(rows), threads_for(d), 0, cuda::current_stream()>>>(
      static_cast<T*>(dx), static_cast<const T*>(g), static_cast<const T*>(x), d);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace

void softmax_forward(DType dtype, void* y, const void* x, int64_t rows, int64_t d) {
  switch (dtype) {
    case DType::f32: return fwd_t<float>(y, x, rows, d);
    case DType::bf16: return fwd_t<__nv_bfloat16>(y, x, rows, d);
    default: fail("softmax (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

void softmax_backward(DType dtype, void* dx, const void* g, const void* x, int64_t rows, int64_t d) {
  switch (dtype) {
    case DType::f32: return bwd_t<float>(dx, g, x, rows, d);
    case DType::bf16: return bwd_t<__nv_bfloat16>(dx, g, x, rows, d);
    default: fail("softmax backward (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

}  // namespace gta::kernels
