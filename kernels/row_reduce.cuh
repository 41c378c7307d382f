// Device helpers shared by the row-wise kernels (softmax, cross-entropy, RMSNorm, RoPE, embedding,
// reference attention): fp32 loads and stores of f32/bf16 storage, and block-wide reductions over
// one row. Every reduction is a fixed butterfly over the warp then over the warps' partials, so its
// result depends only on the block size (deterministic), and every thread receives it.
#pragma once
#include <cuda_bf16.h>

namespace gta::kernels {

// x read as fp32 / v stored rounded to T (bf16: round to nearest even).
template <typename T> __device__ __forceinline__ float ld(const T* p) { return static_cast<float>(*p); }
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16* p) { return __bfloat162float(*p); }
template <typename T> __device__ __forceinline__ void st(T* p, float v) { *p = static_cast<T>(v); }
template <> __device__ __forceinline__ void st<__nv_bfloat16>(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Online log-sum-exp: (m, s) with s = sum exp(x - m) absorbs (m2, s2).
__device__ __forceinline__ void lse_merge(float& m, float& s, float m2, float s2) {
  const float M = fmaxf(m, m2);
  if (M == -INFINITY) return;
  s = s * expf(m - M) + s2 * expf(m2 - M);
  m = M;
}

// Block-wide (max, sum-exp) merge of every thread's (m, s).
__device__ __forceinline__ void block_lse(float& m, float& s) {
  __shared__ float rm[32], rs[32];
  for (int o = 16; o > 0; o /= 2)
    lse_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
  __syncthreads();  // the shared partials may still be read by a previous call
  if (lane == 0) {
    rm[warp] = m;
    rs[warp] = s;
  }
  __syncthreads();
  m = lane < nw ? rm[lane] : -INFINITY;
  s = lane < nw ? rs[lane] : 0.f;
  for (int o = 16; o > 0; o /= 2)
    lse_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
}

// Block-wide sum of every thread's v (float, or double where fp64 accumulation is wanted).
template <typename A>
__device__ __forceinline__ A block_sum(A v) {
  __shared__ A red[32];
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  A t = lane < nw ? red[lane] : A(0);
  for (int o = 16; o > 0; o /= 2) t += __shfl_xor_sync(0xffffffffu, t, o);
  return t;
}

}  // namespace gta::kernels
