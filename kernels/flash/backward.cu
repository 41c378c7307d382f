// The width-generic parts of the mma.sync flash backward (backward.cuh): (a) D = dout . out, and
// the sum of the dK/dV units' fp32 partials. Compiled once here rather than in every
// instantiate_*.cu, so that each kernel has one definition.
#include <cuda_bf16.h>

#include "core/cuda_context.h"
#include "kernels/flash/backward.cuh"

namespace gta::kernels::flash {

// 4 lanes per row (8 rows per warp), each lane DV / 32 chunks of 8 (chunk c * 4 + lane % 4, so a
// warp's loads cover whole rows), all loads issued before the FMAs; fp32 sum per lane in chunk
// order, then a fixed two-step shuffle tree.
template <int DV>
__global__ void __launch_bounds__(256)
    dsum_kernel(AttnDims32 d, const bf16* __restrict__ out, const bf16* __restrict__ dout, float* __restrict__ D) {
  constexpr int kC = DV / 32;
  const int64_t rows = static_cast<int64_t>(d.B) * d.T * d.nq;  // [B, T, nq] order
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 4;
  const int sub = threadIdx.x % 4;
  float acc = 0.f;
  if (w < rows) {
    uint4 a[kC], g[kC];
#pragma unroll
    for (int c = 0; c < kC; ++c) {
      a[c] = *reinterpret_cast<const uint4*>(out + w * DV + (c * 4 + sub) * 8);
      g[c] = *reinterpret_cast<const uint4*>(dout + w * DV + (c * 4 + sub) * 8);
    }
#pragma unroll
    for (int c = 0; c < kC; ++c) {
      const __nv_bfloat162* pa = reinterpret_cast<const __nv_bfloat162*>(&a[c]);
      const __nv_bfloat162* pg = reinterpret_cast<const __nv_bfloat162*>(&g[c]);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 x = __bfloat1622float2(pa[j]), y = __bfloat1622float2(pg[j]);
        acc = fmaf(x.x, y.x, acc);
        acc = fmaf(x.y, y.y, acc);
      }
    }
  }
  acc += __shfl_xor_sync(0xffffffffu, acc, 1);
  acc += __shfl_xor_sync(0xffffffffu, acc, 2);
  if (w < rows && sub == 0) {
    const int i = static_cast<int>(w % d.nq);
    const int64_t bt = w / d.nq;
    const int t = static_cast<int>(bt % d.T), b = static_cast<int>(bt / d.T);
    D[(static_cast<int64_t>(b) * d.nq + i) * d.T + t] = acc;
  }
}

template <int DV>
void launch_dsum(const AttnDims32& d, const bf16* out, const bf16* dout, float* D, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(d.B) * d.T * d.nq;
  dsum_kernel<DV><<<static_cast<unsigned>((rows * 4 + 255) / 256), 256, 0, stream>>>(d, out, dout, D);
  GTA_CUDA_CHECK_LAUNCH();
}

template void launch_dsum<64>(const AttnDims32&, const bf16*, const bf16*, float*, cudaStream_t);
template void launch_dsum<96>(const AttnDims32&, const bf16*, const bf16*, float*, cudaStream_t);
template void launch_dsum<128>(const AttnDims32&, const bf16*, const bf16*, float*, cudaStream_t);
template void launch_dsum<192>(const AttnDims32&, const bf16*, const bf16*, float*, cudaStream_t);

// out[b, u, h, :] = sum over the `per` units of head h, in unit order, of part[b, unit, u, :].
__global__ void __launch_bounds__(256) reduce_units_kernel(const float* __restrict__ part, bf16* __restrict__ out,
                                                           int B, int S, int heads, int W, int units, int per) {
  const int64_t pairs = static_cast<int64_t>(B) * S * heads * (W / 2);
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < pairs;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(idx % (W / 2)) * 2;
    int64_t rest = idx / (W / 2);
    const int h = static_cast<int>(rest % heads);
    rest /= heads;
    const int u = static_cast<int>(rest % S);
    const int64_t b = rest / S;
    float2 acc = make_float2(0.f, 0.f);
    for (int p = 0; p < per; ++p) {
      const float2 x = *reinterpret_cast<const float2*>(part + ((b * units + h * per + p) * S + u) * W + c);
      acc.x += x.x;
      acc.y += x.y;
    }
    *reinterpret_cast<__nv_bfloat162*>(out + idx * 2) = __floats2bfloat162_rn(acc.x, acc.y);
  }
}

void launch_reduce_units(const float* part, bf16* out, int B, int S, int heads, int W, int units, int per,
                         cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(B) * S * heads * W / 2;
  reduce_units_kernel<<<cuda::grid_for(n, 256), 256, 0, stream>>>(part, out, B, S, heads, W, units, per);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace gta::kernels::flash
