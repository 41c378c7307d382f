// Part (c) of the mma.sync flash backward (the math and tiling: kernels/flash_attention.cu): dQ of
// one (query tile, query head, batch) block; bwd_kernel (backward.cuh) runs it.
#pragma once
#include <cmath>

#include "kernels/flash/mma.cuh"
#include "kernels/flash/tiling.h"

namespace gta::kernels::flash {

// MR row blocks of 16 queries per warp: 64 * MR queries per CTA; key tiles of KN (64 with MR 1;
// 32 with MR 2, where 64 would spill).
template <int DQK, int DV, int MR>
struct DqCfg {
  static constexpr int TM = 64 * MR, KN = MR == 1 ? 64 : 32;
  static constexpr int PQ = DQK + 8, PV = DV + 8;
  static constexpr size_t bytes = sizeof(bf16) * (TM * PQ + TM * PV + 2 * KN * PQ + 2 * KN * PV);
};

template <int DQK, int DV, int MR>
__device__ __forceinline__ void dq_block(int i, int b, int t0, const AttnDims32& d, float scale, float sl2,
                                         const bf16* __restrict__ q, const bf16* __restrict__ k,
                                         const bf16* __restrict__ v, const bf16* __restrict__ dout,
                                         const float* __restrict__ lse, const float* __restrict__ D,
                                         bf16* __restrict__ dq) {
  constexpr int TM = 64 * MR, RW = 16 * MR, KN = DqCfg<DQK, DV, MR>::KN;
  constexpr int PQ = DQK + 8, PV = DV + 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw);  // [TM][PQ]
  bf16* Gs = Qs + TM * PQ;                        // [TM][PV]
  bf16* Ks = Gs + TM * PV;                        // [2][KN][PQ]
  bf16* Vs = Ks + 2 * KN * PQ;                    // [2][KN][PV]
  const int kh = i / d.gk, vh = i / d.gv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t kstride = static_cast<int64_t>(d.nk) * DQK, vstride = static_cast<int64_t>(d.nv) * DV;
  const bf16* kb = k + (static_cast<int64_t>(b) * d.S * d.nk + kh) * DQK;
  const bf16* vb = v + (static_cast<int64_t>(b) * d.S * d.nv + vh) * DV;
  const int kend = min(d.S, d.off + t0 + TM);
  const int ntiles = (kend + KN - 1) / KN;

  load_tile<TM, DQK, PQ>(Qs, q + ((static_cast<int64_t>(b) * d.T + t0) * d.nq + i) * DQK,
                         static_cast<int64_t>(d.nq) * DQK, d.T - t0);
  load_tile<TM, DV, PV>(Gs, dout + ((static_cast<int64_t>(b) * d.T + t0) * d.nq + i) * DV,
                        static_cast<int64_t>(d.nq) * DV, d.T - t0);
  load_tile<KN, DQK, PQ>(Ks, kb, kstride, d.S);
  load_tile<KN, DV, PV>(Vs, vb, vstride, d.S);
  cp_commit();

  const int wpos0 = d.off + t0 + warp * RW, wpos1 = wpos0 + RW - 1;  // positions of this warp's rows
  float L2[MR][2], Dr[MR][2];
#pragma unroll
  for (int mi = 0; mi < MR; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int t = t0 + warp * RW + mi * 16 + lane / 4 + 8 * h;
      const int64_t row = (static_cast<int64_t>(b) * d.nq + i) * d.T + t;
      L2[mi][h] = t < d.T ? lse[row] * kLog2e : 0.f;
      Dr[mi][h] = t < d.T ? D[row] : 0.f;
    }
  float dqa[MR][DQK / 8][4];
#pragma unroll
  for (int mi = 0; mi < MR; ++mi) zero(dqa[mi]);

  for (int n = 0; n < ntiles; ++n) {
    const int u0 = n * KN, buf = n & 1;
    cp_wait_all();
    __syncthreads();
    if (n + 1 < ntiles) {
      const int u1 = u0 + KN;
      load_tile<KN, DQK, PQ>(Ks + (buf ^ 1) * KN * PQ, kb + u1 * kstride, kstride, d.S - u1);
      load_tile<KN, DV, PV>(Vs + (buf ^ 1) * KN * PV, vb + u1 * vstride, vstride, d.S - u1);
    }
    cp_commit();
    if (u0 > wpos1) continue;  // every key of the tile is after every row of this warp
    const bf16* Kt = Ks + buf * KN * PQ;
    const bf16* Vt = Vs + buf * KN * PV;

    // S = Q K^T and dP = dO V^T, both issued before the exponentials (the tensor cores work on dP
    // while P is computed), then dS = P (dP - D), dQ += dS K
    float sp[MR][KN / 8][4], dp[MR][KN / 8][4];
#pragma unroll
    for (int mi = 0; mi < MR; ++mi) {
      zero(sp[mi]);
      zero(dp[mi]);
    }
    mma_abt<DQK, KN, PQ, PQ, MR>(sp, Qs, warp * RW, Kt, lane);
    mma_abt<DV, KN, PV, PV, MR>(dp, Gs, warp * RW, Vt, lane);
#pragma unroll
    for (int mi = 0; mi < MR; ++mi)
#pragma unroll
      for (int j = 0; j < KN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) sp[mi][j][e] = ex2(fmaf(sp[mi][j][e], sl2, -L2[mi][e / 2]));
    if (u0 + KN - 1 > wpos0) mask_causal<MR, KN, false>(sp, wpos0 - u0, lane);
    uint32_t sf[MR][KN / 16][4];
#pragma unroll
    for (int mi = 0; mi < MR; ++mi) {
#pragma unroll
      for (int j = 0; j < KN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) dp[mi][j][e] = sp[mi][j][e] * (dp[mi][j][e] - Dr[mi][e / 2]);
      to_a_frag<KN>(sf[mi], dp[mi]);
    }
    mma_py<KN, DQK, PQ, MR>(dqa, sf, Kt, lane);
  }

#pragma unroll
  for (int mi = 0; mi < MR; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int t = t0 + warp * RW + mi * 16 + lane / 4 + 8 * h;
      if (t >= d.T) continue;
      bf16* row = dq + ((static_cast<int64_t>(b) * d.T + t) * d.nq + i) * DQK + 2 * (lane % 4);
#pragma unroll
      for (int j = 0; j < DQK / 8; ++j)
        *reinterpret_cast<uint32_t*>(row + j * 8) =
            pack_bf16(dqa[mi][j][2 * h] * scale, dqa[mi][j][2 * h + 1] * scale);
    }
}

}  // namespace gta::kernels::flash
