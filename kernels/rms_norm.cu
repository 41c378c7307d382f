// RMSNorm on the GPU, one block per row, fp32 statistics:
//   r = 1 / sqrt(mean(x^2) + eps),  y = x r w               (r saved, f32)
//   gh = g w,  dx = r (gh - x r mean(gh x r))  (+ dx_add: a gradient reaching x by another path)
//   dw = sum over rows of g x r: rows cut into fixed chunks (the count depends only on the shape),
//        each chunk summed in row order into an fp32 partial, the partials summed in chunk order.
// Fused with the residual add before it (add_rms_norm_forward), the row normalised is h = x + res,
// stored rounded to the dtype exactly as the elementwise add rounds it and normalised from that
// rounded value: the math of add then rms_norm, bit for bit, reading x and res once. Its backward
// is the one above with x = h and dx_add = the gradient of h along the residual stream, so that
// dh = both is formed in the dx pass.
// Deterministic (no atomics).
#include <cuda_bf16.h>

#include "core/cuda_context.h"
#include "kernels/row_reduce.cuh"
#include "kernels/rms_norm.h"

namespace gta::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunkRows = 64;


// kAdd: the row normalised is h = x + res, written to h; otherwise x itself (h, res unused).
template <typename T, bool kAdd>
__global__ void fwd_kernel(T* y, float* rstd, T* h, const T* x, const T* res, const T* w, int64_t d, float eps) {
  const int64_t r = blockIdx.x;
  const T* xr = x + r * d;
  T* hr = kAdd ? h + r * d : nullptr;
  float ss = 0.f;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    float v;
    if constexpr (kAdd) {
      T sum;
      st(&sum, ld(xr + c) + ld(res + r * d + c));
      hr[c] = sum;
      v = ld(&sum);
    } else {
      v = ld(xr + c);
    }
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(d) + eps);
  if (threadIdx.x == 0) rstd[r] = inv;
  const T* nr = kAdd ? hr : xr;  // this thread's own elements of h: written above by this thread
  T* yr = y + r * d;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) st(yr + c, ld(nr + c) * inv * ld(w + c));
}

template <typename T>
__global__ void dx_kernel(T* dx, const T* g, const T* x, const T* w, const float* rstd, const T* dx_add, int64_t d) {
  const int64_t r = blockIdx.x;
  const T *gr = g + r * d, *xr = x + r * d;
  const float inv = rstd[r];
  float dot = 0.f;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) dot = fmaf(ld(gr + c) * ld(w + c), ld(xr + c) * inv, dot);
  const float m = block_sum(dot) / static_cast<float>(d);
  T* dr = dx + r * d;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    const float v = inv * (ld(gr + c) * ld(w + c) - ld(xr + c) * inv * m);
    st(dr + c, dx_add ? v + ld(dx_add + r * d + c) : v);
  }
}

// partial[chunk, c] = sum over the chunk's rows of g x r
template <typename T>
__global__ void dw_partial_kernel(float* partial, const T* g, const T* x, const float* rstd, int64_t rows, int64_t d) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  if (c >= d) return;
  const int64_t r0 = chunk * kChunkRows, r1 = min(rows, r0 + kChunkRows);
  float acc = 0.f;
  for (int64_t r = r0; r < r1; ++r) acc = fmaf(ld(g + r * d + c), ld(x + r * d + c) * rstd[r], acc);
  partial[chunk * d + c] = acc;
}

template <typename T>
__global__ void dw_final_kernel(T* dw, const float* partial, int64_t chunks, int64_t d) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= d) return;
  float acc = 0.f;
  for (int64_t k = 0; k < chunks; ++k) acc += partial[k * d + c];
  st(dw + c, acc);
}

template <typename T, bool kAdd>
void forward_t(void* y, float* rstd, void* h, const void* x, const void* res, const void* w, int64_t rows, int64_t d,
               double eps) {
  if (rows == 0) return;
  GTA_CHECK(rows < (1ll << 31), "rms_norm (CUDA): too many rows ({})", rows);
  const int threads = d >= 512 ? kThreads : 128;
  fwd_kernel<T, kAdd><<<static_cast<unsigned>(rows), threads, 0, cuda::current_stream()>>>(
      static_cast<T*>(y), rstd, static_cast<T*>(h), static_cast<const T*>(x), static_cast<const T*>(res),
      static_cast<const T*>(w), d, static_cast<float>(eps));
  GTA_CUDA_CHECK_LAUNCH();
}

template <typename T>
void backward_t(void* dx, void* dw, float* scratch, const void* g, const void* x, const void* w, const float* rstd,
                int64_t rows, int64_t d, const void* dx_add) {
  cudaStream_t s = cuda::current_stream();
  const T *gp = static_cast<const T*>(g), *xp = static_cast<const T*>(x);
  if (rows > 0) {
    const int threads = d >= 512 ? kThreads : 128;
    dx_kernel<T><<<static_cast<unsigned>(rows), threads, 0, s>>>(
        static_cast<T*>(dx), gp, xp, static_cast<const T*>(w), rstd, static_cast<const T*>(dx_add), d);
    GTA_CUDA_CHECK_LAUNCH();
  }
  if (!dw) return;
  const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
  const unsigned cb = static_cast<unsigned>((d + 127) / 128);
  if (chunks > 0) {
    dw_partial_kernel<T><<<dim3(cb, static_cast<unsigned>(chunks)), 128, 0, s>>>(scratch, gp, xp, rstd, rows, d);
    GTA_CUDA_CHECK_LAUNCH();
  }
  dw_final_kernel<T><<<cb, 128, 0, s>>>(static_cast<T*>(dw), scratch, chunks, d);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace

int64_t rms_norm_backward_scratch(int64_t rows, int64_t d) { return (rows + kChunkRows - 1) / kChunkRows * d; }

void rms_norm_forward(DType dtype, void* y, float* rstd, const void* x, const void* w, int64_t rows, int64_t d,
                      double eps) {
  switch (dtype) {
    case DType::f32: return forward_t<float, false>(y, rstd, nullptr, x, nullptr, w, rows, d, eps);
    case DType::bf16: return forward_t<__nv_bfloat16, false>(y, rstd, nullptr, x, nullptr, w, rows, d, eps);
    default: fail("rms_norm (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

void add_rms_norm_forward(DType dtype, void* h, void* y, float* rstd, const void* x, const void* r, const void* w,
                          int64_t rows, int64_t d, double eps) {
  switch (dtype) {
    case DType::f32: return forward_t<float, true>(y, rstd, h, x, r, w, rows, d, eps);
    case DType::bf16: return forward_t<__nv_bfloat16, true>(y, rstd, h, x, r, w, rows, d, eps);
    default: fail("add_rms_norm (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

void rms_norm_backward(DType dtype, void* dx, void* dw, float* scratch, const void* g, const void* x, const void* w,
                       const float* rstd, int64_t rows, int64_t d, const void* dx_add) {
  switch (dtype) {
    case DType::f32: return backward_t<float>(dx, dw, scratch, g, x, w, rstd, rows, d, dx_add);
    case DType::bf16: return backward_t<__nv_bfloat16>(dx, dw, scratch, g, x, w, rstd, rows, d, dx_add);
    default: fail("rms_norm backward (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

}  // namespace gta::kernels
