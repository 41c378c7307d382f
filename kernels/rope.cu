// Rotary position embedding, rotate-half (Llama/NeoX) convention, as the CPU op. With
// h = rot_dim / 2, for i < h at position p and a = p * theta^(-2i/rot_dim):
//   y[i]   = x[i] cos a - x[i+h] sin a
//   y[i+h] = x[i+h] cos a + x[i] sin a        (inverse / gradient: a -> -a)
// Features from rot_dim on are copied. The angle, cos and sin are computed in double (as the CPU's
// table), so f32 results match the CPU to rounding even at long positions; the rotation itself in
// fp32. One thread per (row, pair i) plus one per passed-through feature.
#include <cuda_bf16.h>

#include "core/cuda_context.h"
#include "kernels/row_reduce.cuh"
#include "core/cuda_runtime.h"
#include "kernels/rope.h"

namespace gta::kernels {

namespace {


// cs[t * h + i] = (cos a, sin a * dir)
__global__ void table_kernel(float2* cs, int64_t T, int h, int rot_dim, double theta, int64_t pos0, double dir,
                             const int32_t* position) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= T * h) return;
  const int64_t t = k / h;
  const int i = static_cast<int>(k % h);
  const int64_t p = pos0 + t + (position ? position[0] : 0);
  const double a = static_cast<double>(p) * pow(theta, -2.0 * i / rot_dim);
  double s, c;
  sincos(a, &s, &c);
  cs[k] = make_float2(static_cast<float>(c), static_cast<float>(dir * s));
}

template <typename T>
__global__ void rope_kernel(T* y, const T* x, const float2* cs, int64_t rows, int64_t T_, int64_t H, int64_t D, int h,
                            int rot_dim) {
  // per row: h pair-threads, then D - rot_dim copy-threads
  const int64_t per_row = h + (D - rot_dim);
  const int64_t n = rows * per_row;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = k / per_row, j = k % per_row;
    const T* xr = x + row * D;
    T* yr = y + row * D;
    if (j < h) {
      const int64_t t = (row / H) % T_;
      const float2 c = cs[t * h + j];
      const float a = ld(xr + j), b = ld(xr + j + h);
      st(yr + j, a * c.x - b * c.y);
      st(yr + j + h, b * c.x + a * c.y);
    } else {
      const int64_t f = rot_dim + (j - h);
      yr[f] = xr[f];
    }
  }
}

template <typename T>
void rope_t(void* y, const void* x, int64_t B, int64_t T_, int64_t H, int64_t D, int rot_dim, double theta,
            int64_t pos0, bool inverse, const int32_t* position) {
  const int h = rot_dim / 2;
  const int64_t rows = B * T_ * H;
  if (rows == 0) return;
  cudaStream_t s = cuda::current_stream();
  float2* cs = nullptr;
  const int dev = [] { int d = 0; GTA_CUDA_CHECK(cudaGetDevice(&d)); return d; }();
  cs = static_cast<float2*>(cuda::device_alloc(sizeof(float2) * T_ * h, dev));
  const int64_t nt = T_ * h;
  table_kernel<<<static_cast<unsigned>((nt + 255) / 256), 256, 0, s>>>(cs, T_, h, rot_dim, theta, pos0,
                                                                     inverse ? -1.0 : 1.0, position);
  GTA_CUDA_CHECK_LAUNCH();
  const int64_t n = rows * (h + (D - rot_dim));
  rope_kernel<T><<<cuda::grid_for(n, 256), 256, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x), cs, rows, T_, H,
                                                        D, h, rot_dim);
  GTA_CUDA_CHECK_LAUNCH();
  cuda::device_free(cs, dev);  // stream-ordered reuse: later work on the same stream only
}

}  // namespace

void rope(DType dtype, void* y, const void* x, int64_t B, int64_t T, int64_t H, int64_t D, int rot_dim, double theta,
          int64_t pos0, bool inverse, const int32_t* position) {
  switch (dtype) {
    case DType::f32: return rope_t<float>(y, x, B, T, H, D, rot_dim, theta, pos0, inverse, position);
    case DType::bf16: return rope_t<__nv_bfloat16>(y, x, B, T, H, D, rot_dim, theta, pos0, inverse, position);
    default: fail("rope (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

}  // namespace gta::kernels
