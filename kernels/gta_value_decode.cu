// The fused value decoder and gate of GTA for decoding; the math is in gta_value_decode.h.
// Grid (ceil(w / 128), n_q, B), one thread per output column j of group i of sequence b: the
// CTA stages o[b, i, :] in shared memory as fp32, each thread walks k down column j of Wb_i
// (consecutive threads read consecutive columns: coalesced; Wb is small and stays in L2 across
// the batch), adds the tiled o and applies the gate.
#include <cuda_bf16.h>

#include "core/cuda_context.h"
#include "kernels/gta_value_decode.h"

namespace gta::kernels {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 128;
constexpr int64_t kMaxDl = 1024;

__global__ void gta_value_decode_kernel(int nq, int dl, int w, const bf16* __restrict__ o,
                                        const bf16* __restrict__ wb, const bf16* __restrict__ g,
                                        bf16* __restrict__ out) {
  extern __shared__ float o_row[];
  const int i = blockIdx.y, b = blockIdx.z;
  const bf16* ob = o + (static_cast<size_t>(b) * nq + i) * dl;
  for (int k = threadIdx.x; k < dl; k += blockDim.x) o_row[k] = __bfloat162float(ob[k]);
  __syncthreads();
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= w) return;
  const bf16* col = wb + static_cast<size_t>(i) * dl * w + j;  // Wb_i[k, j] at col[k w]
  float acc = 0.f;
  for (int k = 0; k < dl; ++k) acc = fmaf(o_row[k], __bfloat162float(col[static_cast<size_t>(k) * w]), acc);
  const size_t at = static_cast<size_t>(b) * nq * w + static_cast<size_t>(i) * w + j;
  const float gate = 1.f / (1.f + __expf(-__bfloat162float(g[at])));
  out[at] = __float2bfloat16(gate * (acc + o_row[j % dl]));
}

}  // namespace

bool gta_value_decode_supported(int64_t dl, int64_t e) { return dl > 0 && dl <= kMaxDl && e > 0; }

void gta_value_decode(const GtaValueDecodeArgs& a) {
  GTA_CHECK(gta_value_decode_supported(a.dl, a.e), "gta_value_decode: unsupported sizes d_l {} e {}", a.dl, a.e);
  if (a.B == 0) return;
  const int64_t w = a.e * a.dl;
  const dim3 grid(static_cast<unsigned>((w + kThreads - 1) / kThreads), static_cast<unsigned>(a.nq),
                  static_cast<unsigned>(a.B));
  gta_value_decode_kernel<<<grid, kThreads, static_cast<size_t>(a.dl) * sizeof(float), cuda::current_stream()>>>(
      static_cast<int>(a.nq), static_cast<int>(a.dl), static_cast<int>(w), static_cast<const bf16*>(a.o),
      static_cast<const bf16*>(a.wb), static_cast<const bf16*>(a.g), static_cast<bf16*>(a.out));
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace gta::kernels
