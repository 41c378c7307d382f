// The mma.sync flash backward (the math and tiling: kernels/flash_attention.cu): (a) D = dout . out,
// then (b) dK/dV and (c) dQ in one launch (bwd_kernel), or on Hopper the wgmma kernels of
// kernels/sm90a/, then the sum of the units' partials where a unit is not a whole key (value) group.
#pragma once
#include <cuda_runtime.h>

#include "core/cuda_context.h"
#include "kernels/flash/dkv.cuh"
#include "kernels/flash/dq.cuh"
#include "kernels/flash/launch.h"
#include "kernels/flash/mma.cuh"
#include "kernels/flash/tiling.h"
#include "kernels/sm90a/flash_backward_wgmma.h"

namespace gta::kernels::flash {

// (a) D_t = dout_t . out_t for every row [B, n_q, T] (backward.cu; instantiated for every d_v).
template <int DV>
void launch_dsum(const AttnDims32& d, const bf16* out, const bf16* dout, float* D, cudaStream_t stream);

// out[b, u, h, :] = sum over the `per` units of head h, in unit order, of part[b, unit, u, :]:
// dk (dv) from the fp32 partials of units smaller than the key (value) group (backward.cu).
void launch_reduce_units(const float* part, bf16* out, int B, int S, int heads, int W, int units, int per,
                         cudaStream_t stream);

// (b) and (c) in one launch: blocks [0, n_dkv) are dK/dV blocks (key tile slowest, tile 0, the
// heaviest, first), the rest dQ blocks (heaviest query tiles first). The two parts are independent
// (both read D), so dQ blocks fill the multiprocessors while the long dK/dV blocks of the first key
// tiles finish, instead of waiting for the kernel boundary. Row blocks per warp: MRQ (dQ), MRK (dK/dV).
template <int DQK, int DV, int MRQ, int MRK, int BQ>
__global__ void __launch_bounds__(kThreads, 2)
    bwd_kernel(AttnDims32 d, int n_dkv, int nqt, float scale, float sl2, const bf16* __restrict__ q,
               const bf16* __restrict__ k, const bf16* __restrict__ v, const bf16* __restrict__ dout,
               const float* __restrict__ lse, const float* __restrict__ D, bf16* __restrict__ dq, bf16* __restrict__ dk,
               bf16* __restrict__ dv, float* __restrict__ pk, float* __restrict__ pv) {
  const int blk = static_cast<int>(blockIdx.x);
  if (blk < n_dkv) {
    const int unit = blk % d.units, rest = blk / d.units;
    dkv_block<DQK, DV, MRK, BQ>(unit, rest % d.B, rest / d.B * (64 * MRK), d, scale, sl2, q, k, v, dout, lse, D, dk,
                                dv, pk, pv);
  } else {
    const int j = blk - n_dkv;
    const int i = j % d.nq, rest = j / d.nq;
    dq_block<DQK, DV, MRQ>(i, rest % d.B, (nqt - 1 - rest / d.B) * (64 * MRQ), d, scale, sl2, q, k, v, dout, lse, D,
                           dq);
  }
}

struct BwdArgs {
  float scale, sl2;
  const bf16 *q, *k, *v, *dout;
  const float *lse, *D;
  bf16 *dq, *dk, *dv;
  float *pk, *pv;
};

template <int DQK, int DV, int MRQ, int MRK, int BQ>
void bwd_launch(const AttnDims32& d, const BwdArgs& x, cudaStream_t stream) {
  const size_t smem = std::max(DkvCfg<DQK, DV, MRK, BQ>::bytes, DqCfg<DQK, DV, MRQ>::bytes);
  cuda::set_dynamic_smem(bwd_kernel<DQK, DV, MRQ, MRK, BQ>, smem, "flash attention (CUDA)");
  const int nqt = (d.T + 64 * MRQ - 1) / (64 * MRQ);
  const int64_t n_dkv = static_cast<int64_t>(d.units) * d.B * ((d.S + 64 * MRK - 1) / (64 * MRK));
  const int64_t n_dq = static_cast<int64_t>(d.nq) * d.B * nqt;
  bwd_kernel<DQK, DV, MRQ, MRK, BQ><<<static_cast<unsigned>(n_dkv + n_dq), kThreads, smem, stream>>>(
      d, static_cast<int>(n_dkv), nqt, x.scale, x.sl2, x.q, x.k, x.v, x.dout, x.lse, x.D, x.dq, x.dk, x.dv, x.pk,
      x.pv);
  GTA_CUDA_CHECK_LAUNCH();
}

template <int DQK, int DV>
void bwd_main(const AttnDims32& d, const Knobs& kn, const BwdArgs& x, cudaStream_t stream) {
  const bool q2 = use_dq2(DQK, DV, kn), k2 = use_dkv2(DQK, DV, kn);
  if constexpr (kDq2<DQK, DV> && kDkv2<DQK, DV>) {
    if (q2 && k2) return bwd_launch<DQK, DV, 2, 2, kBq2<DQK, DV>>(d, x, stream);
  }
  if constexpr (kDq2<DQK, DV>) {
    if (q2) return bwd_launch<DQK, DV, 2, 1, kBq1<DQK, DV>>(d, x, stream);
  }
  if constexpr (kDkv2<DQK, DV>) {
    if (k2) return bwd_launch<DQK, DV, 1, 2, kBq2<DQK, DV>>(d, x, stream);
  }
  bwd_launch<DQK, DV, 1, 1, kBq1<DQK, DV>>(d, x, stream);
}

template <int DQK, int DV>
void backward_impl(const AttnDims& a, const Knobs& kn, float scale, const void* qv, const void* kv, const void* vv,
                   const void* outv, const void* doutv, const float* lse, void* scratch, void* dqv, void* dkv,
                   void* dvv) {
  const DkvPlan plan = dkv_plan(a, kn);
  const AttnDims32 d = bwd_dims(a, plan);
  const ScratchLayout sl = scratch_layout(a, d);
  unsigned char* sp = static_cast<unsigned char*>(scratch);
  float* D = reinterpret_cast<float*>(sp);
  float* pk = sl.pk_bytes ? reinterpret_cast<float*>(sp + sl.d_bytes) : nullptr;
  float* pv = sl.pv_bytes ? reinterpret_cast<float*>(sp + sl.d_bytes + sl.pk_bytes) : nullptr;
  const bf16 *q = static_cast<const bf16*>(qv), *k = static_cast<const bf16*>(kv), *v = static_cast<const bf16*>(vv);
  const bf16 *out = static_cast<const bf16*>(outv), *dout = static_cast<const bf16*>(doutv);
  bf16 *dq = static_cast<bf16*>(dqv), *dk = static_cast<bf16*>(dkv), *dv = static_cast<bf16*>(dvv);
  cudaStream_t stream = cuda::current_stream();
  const float sl2 = scale * kLog2e;
  launch_dsum<DV>(d, out, dout, D, stream);
  // On Hopper (compute capability 9.0), (d_qk, d_v) = (64, 64), (64, 96) or (96, 64) runs the
  // wgmma dK/dV and dQ kernels (same units, same outputs), independent of each other: dK/dV on the
  // side stream, whose priority places its heavier CTAs first, dQ beside it, its CTAs taking the
  // multiprocessors dK/dV's tail leaves idle (GTA_FLASH_STREAMS=1 in the environment runs both on
  // one stream, for measurement; H200, GTA-S B8 T 2048: 0.275 -> 0.272 ms fwd+bwd).
  if (sm90a::backward_available(DQK, DV, kn)) {
    const sm90a::BwdProblem p{d, plan.heads, scale, q, k, v, dout, lse, D, dq, dk, dv, pk, pv};
    const bool two = kn.streams == 2;
    if (two) cuda::fork_side();
    sm90a::dkv(p, two ? cuda::side_stream() : stream);
    sm90a::dq(p, stream);
    if (two) cuda::join_side();
  } else {
    bwd_main<DQK, DV>(d, kn, BwdArgs{scale, sl2, q, k, v, dout, lse, D, dq, dk, dv, pk, pv}, stream);
  }
  if (pk) launch_reduce_units(pk, dk, d.B, d.S, d.nk, DQK, d.units, d.gk / d.gu, stream);
  if (pv) launch_reduce_units(pv, dv, d.B, d.S, d.nv, DV, d.units, d.gv / d.gu, stream);
}

}  // namespace gta::kernels::flash
