// The forward of the mma.sync flash kernels (the math and tiling: kernels/flash_attention.cu):
// one CTA per (64 MR queries, query head, batch), key tiles up to the causal diagonal, online
// softmax; out and the log-sum-exp saved.
#pragma once
#include "core/cuda_context.h"
#include "kernels/flash/launch.h"
#include "kernels/flash/mma.cuh"
#include "kernels/flash/tiling.h"

namespace gta::kernels::flash {

// MR row blocks of 16 per warp: a CTA holds 64 * MR queries; key tiles of KN (32 where 64 would
// spill: MR 2 with d_qk + d_v > 128).
template <int DQK, int DV, int MR>
struct FwdCfg {
  static constexpr int TM = 64 * MR, KN = MR == 2 && DQK + DV > 128 ? 32 : 64;
  static constexpr int PQ = DQK + 8, PV = DV + 8;
  static constexpr size_t bytes = sizeof(bf16) * (TM * PQ + 2 * KN * PQ + 2 * KN * PV);
};

template <int DQK, int DV, int MR>
__global__ void __launch_bounds__(kThreads, MR == 2 ? 2 : (DQK + DV <= 128 ? 3 : 1))
    fwd_kernel(AttnDims32 d, float sl2, const bf16* __restrict__ q, const bf16* __restrict__ k,
               const bf16* __restrict__ v, bf16* __restrict__ out, float* __restrict__ lse) {
  constexpr int TM = 64 * MR, RW = 16 * MR, KN = FwdCfg<DQK, DV, MR>::KN;
  constexpr int PQ = DQK + 8, PV = DV + 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw);  // [TM][PQ]
  bf16* Ks = Qs + TM * PQ;                        // [2][KN][PQ]
  bf16* Vs = Ks + 2 * KN * PQ;                    // [2][KN][PV]
  const int i = blockIdx.x, b = blockIdx.y;
  const int t0 = (gridDim.z - 1 - blockIdx.z) * TM;  // heaviest tiles first
  const int kh = i / d.gk, vh = i / d.gv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t kstride = static_cast<int64_t>(d.nk) * DQK, vstride = static_cast<int64_t>(d.nv) * DV;
  const bf16* kb = k + (static_cast<int64_t>(b) * d.S * d.nk + kh) * DQK;  // key u at kb + u * kstride
  const bf16* vb = v + (static_cast<int64_t>(b) * d.S * d.nv + vh) * DV;
  const int kend = min(d.S, d.off + t0 + TM);  // keys [0, kend) are visible to some row of the tile
  const int ntiles = (kend + KN - 1) / KN;

  load_tile<TM, DQK, PQ>(Qs, q + ((static_cast<int64_t>(b) * d.T + t0) * d.nq + i) * DQK,
                         static_cast<int64_t>(d.nq) * DQK, d.T - t0);
  load_tile<KN, DQK, PQ>(Ks, kb, kstride, d.S);
  load_tile<KN, DV, PV>(Vs, vb, vstride, d.S);
  cp_commit();
  cp_wait_all();
  __syncthreads();
  // Q fragments stay in registers unless they would push the 128-query tiling into spills; then
  // they are re-read from Qs (which stays resident) every key tile.
  constexpr bool kQReg = MR == 1 || DQK + DV <= 160;
  uint32_t qf[kQReg ? MR : 1][DQK / 16][4];
  if constexpr (kQReg) {
#pragma unroll
    for (int mi = 0; mi < MR; ++mi)
#pragma unroll
      for (int kk = 0; kk < DQK / 16; ++kk) ldsm4(qf[mi][kk], a_addr<PQ>(Qs, warp * RW + mi * 16, kk * 16, lane));
  }

  float o[MR][DV / 8][4];
#pragma unroll
  for (int mi = 0; mi < MR; ++mi) zero(o[mi]);
  float m[MR][2], l[MR][2];  // per row g, g + 8 of each row block; m in log2 units
  int pos[MR][2];
#pragma unroll
  for (int mi = 0; mi < MR; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      m[mi][h] = -INFINITY;
      l[mi][h] = 0.f;
      pos[mi][h] = d.off + t0 + warp * RW + mi * 16 + lane / 4 + 8 * h;
    }
  const int wpos0 = d.off + t0 + warp * RW, wpos1 = wpos0 + RW - 1;  // positions of this warp's rows

  for (int n = 0; n < ntiles; ++n) {
    const int u0 = n * KN, buf = n & 1;
    if (n > 0) {
      cp_wait_all();
      __syncthreads();
    }
    if (n + 1 < ntiles) {  // prefetch the next tile into the other buffer (free since the barrier)
      const int u1 = u0 + KN;
      load_tile<KN, DQK, PQ>(Ks + (buf ^ 1) * KN * PQ, kb + u1 * kstride, kstride, d.S - u1);
      load_tile<KN, DV, PV>(Vs + (buf ^ 1) * KN * PV, vb + u1 * vstride, vstride, d.S - u1);
    }
    cp_commit();
    if (u0 > wpos1) continue;  // every key of the tile is after every row of this warp
    const bf16* Kt = Ks + buf * KN * PQ;
    const bf16* Vt = Vs + buf * KN * PV;

    float s[MR][KN / 8][4];
#pragma unroll
    for (int mi = 0; mi < MR; ++mi) zero(s[mi]);
    if constexpr (kQReg) {
#pragma unroll
      for (int kk = 0; kk < DQK / 16; ++kk)
#pragma unroll
        for (int nn = 0; nn < KN / 16; ++nn) {
          uint32_t bb[4];
          ldsm4(bb, bt_addr<PQ>(Kt, nn * 16, kk * 16, lane));
#pragma unroll
          for (int mi = 0; mi < MR; ++mi) {
            mma(s[mi][2 * nn], qf[mi][kk], bb[0], bb[1]);
            mma(s[mi][2 * nn + 1], qf[mi][kk], bb[2], bb[3]);
          }
        }
    } else {
      mma_abt<DQK, KN, PQ, PQ, MR>(s, Qs, warp * RW, Kt, lane);
    }
    // causal mask on the raw scores (the scale is folded into the exponent's FMA below)
    if (u0 + KN - 1 > wpos0) {
#pragma unroll
      for (int mi = 0; mi < MR; ++mi)
#pragma unroll
        for (int j = 0; j < KN / 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (u0 + j * 8 + 2 * (lane % 4) + (e & 1) > pos[mi][e / 2]) s[mi][j][e] = -INFINITY;
    }
    // online softmax, rows g (e = 0, 1) and g + 8 (e = 2, 3); a row's KN columns live in 4 lanes
#pragma unroll
    for (int mi = 0; mi < MR; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < KN / 8; ++j) mx = fmaxf(mx, fmaxf(s[mi][j][2 * h], s[mi][j][2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mnew = fmaxf(m[mi][h], mx * sl2);  // sl2 > 0: the max of the scaled scores
        const float mb = mnew == -INFINITY ? 0.f : mnew;
        const float alpha = ex2(m[mi][h] - mb);  // m = -inf: 0
        m[mi][h] = mnew;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < KN / 8; ++j) {
          s[mi][j][2 * h] = ex2(fmaf(s[mi][j][2 * h], sl2, -mb));
          s[mi][j][2 * h + 1] = ex2(fmaf(s[mi][j][2 * h + 1], sl2, -mb));
          sum += s[mi][j][2 * h] + s[mi][j][2 * h + 1];
        }
        l[mi][h] = l[mi][h] * alpha + sum;
#pragma unroll
        for (int j = 0; j < DV / 8; ++j) {
          o[mi][j][2 * h] *= alpha;
          o[mi][j][2 * h + 1] *= alpha;
        }
      }
    uint32_t pf[MR][KN / 16][4];
#pragma unroll
    for (int mi = 0; mi < MR; ++mi) to_a_frag<KN>(pf[mi], s[mi]);
    mma_py<KN, DV, PV, MR>(o, pf, Vt, lane);
  }

#pragma unroll
  for (int mi = 0; mi < MR; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float sum = l[mi][h];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int t = t0 + warp * RW + mi * 16 + lane / 4 + 8 * h;
      if (t >= d.T) continue;
      const float inv = 1.f / sum;
      bf16* orow = out + ((static_cast<int64_t>(b) * d.T + t) * d.nq + i) * DV + 2 * (lane % 4);
#pragma unroll
      for (int j = 0; j < DV / 8; ++j)
        *reinterpret_cast<uint32_t*>(orow + j * 8) = pack_bf16(o[mi][j][2 * h] * inv, o[mi][j][2 * h + 1] * inv);
      if (lane % 4 == 0) lse[(static_cast<int64_t>(b) * d.nq + i) * d.T + t] = m[mi][h] * kLn2 + logf(sum);
    }
}

template <int DQK, int DV, int MR>
void forward_launch(const AttnDims32& d, float scale, const void* q, const void* k, const void* v, void* out,
                    float* lse) {
  const size_t smem = FwdCfg<DQK, DV, MR>::bytes;
  cuda::set_dynamic_smem(fwd_kernel<DQK, DV, MR>, smem, "flash attention (CUDA)");
  dim3 grid(d.nq, d.B, (d.T + 64 * MR - 1) / (64 * MR));
  fwd_kernel<DQK, DV, MR><<<grid, kThreads, smem, cuda::current_stream()>>>(
      d, scale * kLog2e, static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
      static_cast<bf16*>(out), lse);
  GTA_CUDA_CHECK_LAUNCH();
}

template <int DQK, int DV>
void forward_impl(const AttnDims32& d, const Knobs& kn, float scale, const void* q, const void* k, const void* v,
                  void* out, float* lse) {
  if constexpr (kFwd2<DQK, DV>) {
    if (use_fwd2(DQK, DV, kn)) return forward_launch<DQK, DV, 2>(d, scale, q, k, v, out, lse);
  }
  forward_launch<DQK, DV, 1>(d, scale, q, k, v, out, lse);
}

}  // namespace gta::kernels::flash
