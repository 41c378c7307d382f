// Part (b) of the mma.sync flash backward (the math and tiling: kernels/flash_attention.cu): dK and
// dV of one (key tile, batch, unit) block, a unit being consecutive query heads that share their
// key and value heads; bwd_kernel (backward.cuh) runs it.
#pragma once
#include <cmath>

#include "kernels/flash/mma.cuh"
#include "kernels/flash/tiling.h"

namespace gta::kernels::flash {

// MR row blocks of 16 keys per warp (64 * MR keys per CTA), BQ query rows per step (register budget).
template <int DQK, int DV, int MR, int BQ>
struct DkvCfg {
  static constexpr int TK = 64 * MR;
  static constexpr int PQ = DQK + 8, PV = DV + 8;
  static constexpr size_t bytes =
      sizeof(bf16) * (TK * PQ + TK * PV + 2 * BQ * PQ + 2 * BQ * PV) + sizeof(float) * 4 * BQ;
};

template <int DQK, int DV, int MR, int BQ>
__device__ __forceinline__ void dkv_block(int unit, int b, int u0, const AttnDims32& d, float scale, float sl2,
                                          const bf16* __restrict__ q, const bf16* __restrict__ k,
                                          const bf16* __restrict__ v, const bf16* __restrict__ dout,
                                          const float* __restrict__ lse, const float* __restrict__ D,
                                          bf16* __restrict__ dk, bf16* __restrict__ dv, float* __restrict__ pk,
                                          float* __restrict__ pv) {
  using Cfg = DkvCfg<DQK, DV, MR, BQ>;
  constexpr int TK = Cfg::TK, RW = 16 * MR, PQ = Cfg::PQ, PV = Cfg::PV;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* Ks = reinterpret_cast<bf16*>(smem_raw);  // [TK][PQ]
  bf16* Vs = Ks + TK * PQ;                        // [TK][PV]
  bf16* Qs = Vs + TK * PV;                        // [2][BQ][PQ]
  bf16* Gs = Qs + 2 * BQ * PQ;                    // [2][BQ][PV]  dout
  float* Ls = reinterpret_cast<float*>(Gs + 2 * BQ * PV);  // [2][BQ]  lse
  float* Ds = Ls + 2 * BQ;                                 // [2][BQ]  D
  const int h0 = unit * d.gu, kh = h0 / d.gk, vh = h0 / d.gv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t qstride = static_cast<int64_t>(d.nq) * DQK, gstride = static_cast<int64_t>(d.nq) * DV;
  const int64_t kstride = static_cast<int64_t>(d.nk) * DQK, vstride = static_cast<int64_t>(d.nv) * DV;

  const int tfirst = max(0, u0 - d.off) / BQ * BQ;  // first query tile that sees a key of this tile
  const int steps = d.gu * ((d.T - tfirst + BQ - 1) / BQ);
  auto issue = [&](int i, int t0, int buf) {  // query tile t0 of head i
    const int valid = d.T - t0;
    load_tile<BQ, DQK, PQ>(Qs + buf * BQ * PQ, q + ((static_cast<int64_t>(b) * d.T + t0) * d.nq + i) * DQK, qstride,
                           valid);
    load_tile<BQ, DV, PV>(Gs + buf * BQ * PV, dout + ((static_cast<int64_t>(b) * d.T + t0) * d.nq + i) * DV,
                          gstride, valid);
    const int64_t row = (static_cast<int64_t>(b) * d.nq + i) * d.T + t0;
    const int tid = threadIdx.x;
    if (tid < BQ) cp_async4(Ls + buf * BQ + tid, lse + row + (tid < valid ? tid : 0), tid < valid);
    else if (tid < 2 * BQ) cp_async4(Ds + buf * BQ + tid - BQ, D + row + (tid - BQ < valid ? tid - BQ : 0),
                                     tid - BQ < valid);
  };
  load_tile<TK, DQK, PQ>(Ks, k + ((static_cast<int64_t>(b) * d.S + u0) * d.nk + kh) * DQK, kstride, d.S - u0);
  load_tile<TK, DV, PV>(Vs, v + ((static_cast<int64_t>(b) * d.S + u0) * d.nv + vh) * DV, vstride, d.S - u0);
  int ti = tfirst, hi = h0;  // the step loaded next: query tile ti of head hi (heads outer, tiles inner)
  issue(hi, ti, 0);
  cp_commit();

  float dka[MR][DQK / 8][4], dva[MR][DV / 8][4];
#pragma unroll
  for (int mi = 0; mi < MR; ++mi) {
    zero(dka[mi]);
    zero(dva[mi]);
  }
  const int wkey0 = u0 + warp * RW;         // first key of this warp
  const int key_lo = wkey0 + lane / 4;      // key of accumulator row g of row block 0 (+ 16 mi, + 8)

  for (int st = 0; st < steps; ++st) {
    const int buf = st & 1, t0 = ti;
    ti += BQ;
    if (ti >= d.T) {
      ti = tfirst;
      ++hi;
    }
    cp_wait_all();
    __syncthreads();
    if (st + 1 < steps) issue(hi, ti, buf ^ 1);
    cp_commit();
    if (wkey0 > d.off + t0 + BQ - 1) continue;  // every key of this warp is after every query of the step
    const bf16* Qt = Qs + buf * BQ * PQ;
    const bf16* Gt = Gs + buf * BQ * PV;
    const float* Lt = Ls + buf * BQ;
    const float* Dt = Ds + buf * BQ;

    // S^T = K Q^T (16 MR keys x BQ queries per warp), P^T = exp2(S^T scale log2e - lse log2e)
    float sp[MR][BQ / 8][4];
#pragma unroll
    for (int mi = 0; mi < MR; ++mi) zero(sp[mi]);
    mma_abt<DQK, BQ, PQ, PQ, MR>(sp, Ks, warp * RW, Qt, lane);
#pragma unroll
    for (int j = 0; j < BQ / 8; ++j) {
      const float2 L = *reinterpret_cast<const float2*>(Lt + j * 8 + 2 * (lane % 4));
#pragma unroll
      for (int mi = 0; mi < MR; ++mi)
#pragma unroll
        for (int e = 0; e < 4; ++e) sp[mi][j][e] = ex2(fmaf(sp[mi][j][e], sl2, -((e & 1) ? L.y : L.x) * kLog2e));
    }
    if (wkey0 + RW - 1 > d.off + t0) mask_causal<MR, BQ, true>(sp, d.off + t0 - wkey0, lane);
    {  // dV += P^T dO
      uint32_t pf[MR][BQ / 16][4];
#pragma unroll
      for (int mi = 0; mi < MR; ++mi) to_a_frag<BQ>(pf[mi], sp[mi]);
      mma_py<BQ, DV, PV, MR>(dva, pf, Gt, lane);
    }
    // dP^T = V dO^T, dS^T = P^T (dP^T - D)
    float dp[MR][BQ / 8][4];
#pragma unroll
    for (int mi = 0; mi < MR; ++mi) zero(dp[mi]);
    mma_abt<DV, BQ, PV, PV, MR>(dp, Vs, warp * RW, Gt, lane);
#pragma unroll
    for (int j = 0; j < BQ / 8; ++j) {
      const float2 Dv = *reinterpret_cast<const float2*>(Dt + j * 8 + 2 * (lane % 4));
#pragma unroll
      for (int mi = 0; mi < MR; ++mi)
#pragma unroll
        for (int e = 0; e < 4; ++e) dp[mi][j][e] = sp[mi][j][e] * (dp[mi][j][e] - ((e & 1) ? Dv.y : Dv.x));
    }
    {  // dK += dS^T Q
      uint32_t sf[MR][BQ / 16][4];
#pragma unroll
      for (int mi = 0; mi < MR; ++mi) to_a_frag<BQ>(sf[mi], dp[mi]);
      mma_py<BQ, DQK, PQ, MR>(dka, sf, Qt, lane);
    }
  }

  // write back: bf16 when this unit is the whole key (value) group, else fp32 partials
#pragma unroll
  for (int mi = 0; mi < MR; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int u = key_lo + 16 * mi + 8 * h;
      if (u >= d.S) continue;
      const int c = 2 * (lane % 4);
      if (d.gu == d.gk) {
        bf16* row = dk + ((static_cast<int64_t>(b) * d.S + u) * d.nk + kh) * DQK + c;
#pragma unroll
        for (int j = 0; j < DQK / 8; ++j)
          *reinterpret_cast<uint32_t*>(row + j * 8) =
              pack_bf16(dka[mi][j][2 * h] * scale, dka[mi][j][2 * h + 1] * scale);
      } else {
        float* row = pk + ((static_cast<int64_t>(b) * d.units + unit) * d.S + u) * DQK + c;
#pragma unroll
        for (int j = 0; j < DQK / 8; ++j)
          *reinterpret_cast<float2*>(row + j * 8) =
              make_float2(dka[mi][j][2 * h] * scale, dka[mi][j][2 * h + 1] * scale);
      }
      if (d.gu == d.gv) {
        bf16* row = dv + ((static_cast<int64_t>(b) * d.S + u) * d.nv + vh) * DV + c;
#pragma unroll
        for (int j = 0; j < DV / 8; ++j)
          *reinterpret_cast<uint32_t*>(row + j * 8) = pack_bf16(dva[mi][j][2 * h], dva[mi][j][2 * h + 1]);
      } else {
        float* row = pv + ((static_cast<int64_t>(b) * d.units + unit) * d.S + u) * DV + c;
#pragma unroll
        for (int j = 0; j < DV / 8; ++j)
          *reinterpret_cast<float2*>(row + j * 8) = make_float2(dva[mi][j][2 * h], dva[mi][j][2 * h + 1]);
      }
    }
}

}  // namespace gta::kernels::flash
