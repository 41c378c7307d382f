// FlashAttention-2-style causal attention on the tensor cores: bf16 operands, fp32 accumulation
// (mma.sync.m16n8k16), for the general primitive of docs/attention.md (docs/kernels.md describes
// these kernels). Tested against the CPU op and the reference kernels (kernels/attention_ref.cu),
// which keep every other case.
//
// Math. Batch b, query head i, query t at position p = S - T + t, key head i/(n_q/n_k), value head
// i/(n_q/n_v), keys u <= p:
//   s_u = scale q_t . k_u,   lse_t = log sum_u e^{s_u},   P_u = e^{s_u - lse_t},   out_t = sum_u P_u v_u
//   D_t = dout_t . out_t (= sum_u P_u dP_u; the bf16-rounded out, as FlashAttention does)
//   dP_u = dout_t . v_u,   dS_u = P_u (dP_u - D_t)
//   dq_t = scale sum_u dS_u k_u,   dk_u = scale sum_{i,t} dS_{i,t,u} q_{i,t},   dv_u = sum_{i,t} P_{i,t,u} dout_{i,t}
// Exponentials are 2^x on the special-function unit (ex2.approx.ftz, see ex2()) of scores times
// scale*log2(e), folded into one FMA per element with the row max (forward) or lse (backward);
// lse is stored in natural-log units.
//
// Tiling (CTA = 4 warps, 128 threads; every warp owns MR row blocks of 16 rows and keeps them in
// mma accumulators; shared-memory rows are padded by 16 bytes so ldmatrix is free of bank
// conflicts; K/V (or Q/dO) tiles are double-buffered with cp.async, zero-filled past the end).
// With MR = 2 (128-row tiles) every B fragment loaded from shared memory feeds two row blocks,
// halving the ldmatrix traffic per FLOP; MR is picked per (d_qk, d_v) where it fits 255 registers
// without spills at 2 CTAs per SM (see kFwd2, kDq2, kDkv2; measured on the H100 in
// bench/results/flash_attention_h100.md), else MR = 1 (64-row tiles, the 64/64 forward at most 170
// registers, 3 CTAs per SM):
//   forward: one CTA per (64 MR queries, query head, batch), heaviest query tiles launched first.
//     Q fragments stay in registers; loop over key tiles of KN (64; 32 for MR 2 with d_qk + d_v >
//     128, for registers) up to the causal diagonal (tiles past it are never touched, only tiles
//     crossing it are masked; a warp skips the math of a tile that is wholly after its rows):
//     S = Q K^T, online softmax (running max m and sum l per row, O rescaled by e^{m_old - m_new}),
//     P converted in registers from accumulator to bf16 A fragment, O += P V (V through
//     ldmatrix.trans). Rows >= T are not stored; only lse is saved.
//   backward (no atomics; bit-identical run to run):
//     (a) D_t per row (fp32 sum of bf16 products), 4 lanes per row.
//     (b) dK/dV: one CTA per (64 MR keys, batch, unit), a unit being consecutive query heads that
//         share both the key head and the value head (gcd(n_q/n_k, n_q/n_v) heads, or a divisor of
//         that: dkv_plan cuts the unit when its CTAs would be the tail of the launch, e.g. GTA at
//         T 2048 with every head in one unit). Its K and V tiles are loaded once; it loops over
//         the unit's heads and, per head, over the query tiles of BQ at or after the diagonal:
//         S^T = K Q^T, P^T = exp2(S^T - lse), dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - D),
//         dK += dS^T Q, all in registers. When the unit is the whole key (value) group, dk (dv) is
//         written in bf16 directly; otherwise each unit writes fp32 partials to scratch and a
//         reduce kernel adds a head's units in index order (e.g. GVA, n_k 1 and n_v 4: dv direct,
//         dk = sum of 4 partials).
//     (c) dQ: one CTA per (64 MR queries, query head, batch), loop over key tiles (64; 32 for MR
//         2) up to the diagonal: S and dP = dO V^T (both issued before the exponentials, so the
//         tensor cores work on dP while P is computed), P, dS, dQ += dS K (K through
//         ldmatrix.trans); scaled once at the end.
//     In (b) and (c) the causal mask (P = 0 for keys after the query) is a separate pass over the
//     tiles crossing the diagonal only (mask_causal), so the other tiles pay no compare and select.
//     (b) and (c) are independent and share one launch (bwd_kernel): the dK/dV blocks first, the
//     heaviest first, then the dQ blocks, which fill the machine while the long blocks finish.
// Shared key/value heads are read by head index, never materialised per query head. Offsets are
// 64-bit. Widths are template parameters: d_qk in {64, 96, 128}, d_v in {64, 96, 128, 192}.
// On compute capability 9.0 the wgmma kernels of kernels/sm90a/ take over where they apply (the
// forward, dK/dV and dQ for (d_qk, d_v) = (64, 64), (64, 96) and (96, 64), and the forward for
// (64, 192); same math, units and outputs); GTA_FLASH_WGMMA=0 in the environment keeps these
// kernels instead, for measurement.
#include <cuda_bf16.h>

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <numeric>

#include "core/cuda_context.h"
#include "kernels/flash_attention.h"
#include "kernels/flash_ptx.cuh"
#include "kernels/sm90a/flash_backward_wgmma.h"
#include "kernels/sm90a/flash_forward_wgmma.h"

namespace gta::kernels {

namespace {

using namespace flash;
constexpr int kThreads = 128;  // 4 warps
constexpr int BM = 64;         // queries per forward / dq CTA (16 per warp)
constexpr int BN = 64;         // keys per tile (dk/dv CTA: 16 per warp)

struct FDims {
  int B, T, S, nq, nk, nv;
  int gk, gv, gu, units;  // query heads per key head / value head / unit; units = n_q / gu
  int off;                // S - T
};

// ---- PTX wrappers ---------------------------------------------------------------------------------

__device__ __forceinline__ void ldsm4t(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
// c += a (16x16, row) * b (16x8, col)
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Fragment addressing (lane l; tiles in shared memory row-major with pitch P elements):
//  A operand 16x16 at (r0, c0):               row r0 + l%16,                    col c0 + (l/16)*8
//  B operand from an [n][k] tile (X^T), two n8 tiles at (n0, k0): regs {0,1} -> n0..n0+7, {2,3} -> n0+8..
//                                              row n0 + l%8 + (l/16)*8,          col k0 + ((l/8)%2)*8
//  B operand from a [k][n] tile (ldmatrix.trans), two n8 tiles at (k0, n0):
//                                              row k0 + l%8 + ((l/8)%2)*8,       col n0 + (l/16)*8
template <int P>
__device__ __forceinline__ const bf16* a_addr(const bf16* base, int r0, int c0, int lane) {
  return base + (r0 + (lane & 15)) * P + c0 + (lane >> 4) * 8;
}
template <int P>
__device__ __forceinline__ const bf16* bt_addr(const bf16* base, int n0, int k0, int lane) {
  return base + (n0 + (lane & 7) + (lane >> 4) * 8) * P + k0 + ((lane >> 3) & 1) * 8;
}
template <int P>
__device__ __forceinline__ const bf16* bk_addr(const bf16* base, int k0, int n0, int lane) {
  return base + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * P + n0 + (lane >> 4) * 8;
}
// acc[mi] (16 x N, mi < MR) += A rows arow + 16 mi (from shared, K wide) * X^T, X an [N][K] shared
// tile (both non-trans). Every B fragment read from shared memory feeds MR row blocks.
template <int K, int N, int PA, int PX, int MR>
__device__ __forceinline__ void mma_abt(float (&acc)[MR][N / 8][4], const bf16* A, int arow, const bf16* X,
                                        int lane) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t a[MR][4];
#pragma unroll
    for (int mi = 0; mi < MR; ++mi) ldsm4(a[mi], a_addr<PA>(A, arow + mi * 16, kk * 16, lane));
#pragma unroll
    for (int nn = 0; nn < N / 16; ++nn) {
      uint32_t b[4];
      ldsm4(b, bt_addr<PX>(X, nn * 16, kk * 16, lane));
#pragma unroll
      for (int mi = 0; mi < MR; ++mi) {
        mma(acc[mi][2 * nn], a[mi], b[0], b[1]);
        mma(acc[mi][2 * nn + 1], a[mi], b[2], b[3]);
      }
    }
  }
}
// acc[mi] (16 x N) += Pf[mi] (16 x K, bf16 A fragments in registers) * Y, Y a [K][N] shared tile (trans).
template <int K, int N, int PY, int MR>
__device__ __forceinline__ void mma_py(float (&acc)[MR][N / 8][4], const uint32_t (&pf)[MR][K / 16][4],
                                       const bf16* Y, int lane) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
#pragma unroll
    for (int nn = 0; nn < N / 16; ++nn) {
      uint32_t b[4];
      ldsm4t(b, bk_addr<PY>(Y, kk * 16, nn * 16, lane));
#pragma unroll
      for (int mi = 0; mi < MR; ++mi) {
        mma(acc[mi][2 * nn], pf[mi][kk], b[0], b[1]);
        mma(acc[mi][2 * nn + 1], pf[mi][kk], b[2], b[3]);
      }
    }
  }
}

// ROWS x W bf16 tile: row r from src + r * stride (elements) into dst (pitch P); rows >= valid
// zero-filled.
template <int ROWS, int W, int P>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* src, int64_t stride, int valid) {
  constexpr int kChunks = W / 8;  // 16-byte chunks per row
  constexpr int kIters = (ROWS * kChunks + kThreads - 1) / kThreads;
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    const int idx = it * kThreads + static_cast<int>(threadIdx.x);
    if (ROWS * kChunks % kThreads != 0 && idx >= ROWS * kChunks) break;
    const int r = idx / kChunks, c = (idx % kChunks) * 8;
    const bool ok = r < valid;
    cp_async16(dst + r * P + c, ok ? src + r * stride + c : src, ok);
  }
}

template <int N>
__device__ __forceinline__ void zero(float (&a)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) a[j][e] = 0.f;
}

// Causal mask of a warp's probabilities p[mi] (16 x N each; element e of p[mi][j] at tile row r =
// 16 mi + l/4 + 8 (e/2), column c = 8 j + 2 (l%4) + (e&1)): P = 0 where the key is after the
// query. Rows are queries and columns keys (KEY_ROWS false): when c - r > a, a = position of row 0
// - key of column 0. Rows are keys (KEY_ROWS true): when r - c > a, a = position of column 0 - key
// of row 0. Called only for tiles crossing the diagonal: the tiles below it carry no per-element
// compare and select (fused into the exponentials' loop they were ~13% of bwd_kernel's instructions,
// ncu, MHA T 8192).
template <int MR, int N, bool KEY_ROWS>
__device__ __forceinline__ void mask_causal(float (&p)[MR][N / 8][4], int a, int lane) {
#pragma unroll
  for (int mi = 0; mi < MR; ++mi)
#pragma unroll
    for (int j = 0; j < N / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = 16 * mi + lane / 4 + 8 * (e / 2), c = 8 * j + 2 * (lane % 4) + (e & 1);
        if ((KEY_ROWS ? r - c : c - r) > a) p[mi][j][e] = 0.f;
      }
}

// ---- forward --------------------------------------------------------------------------------------

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
    fwd_kernel(FDims d, float sl2, const bf16* __restrict__ q, const bf16* __restrict__ k,
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

// ---- backward (a): D = dout . out ------------------------------------------------------------------

// 4 lanes per row (8 rows per warp), each lane DV / 32 chunks of 8 (chunk c * 4 + lane % 4, so a
// warp's loads cover whole rows), all loads issued before the FMAs; fp32 sum per lane in chunk
// order, then a fixed two-step shuffle tree.
template <int DV>
__global__ void __launch_bounds__(256) dsum_kernel(FDims d, const bf16* __restrict__ out,
                                                   const bf16* __restrict__ dout, float* __restrict__ D) {
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
void launch_dsum(const FDims& d, const bf16* out, const bf16* dout, float* D, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(d.B) * d.T * d.nq;
  dsum_kernel<DV><<<static_cast<unsigned>((rows * 4 + 255) / 256), 256, 0, stream>>>(d, out, dout, D);
  GTA_CUDA_CHECK_LAUNCH();
}

// ---- backward (b): dK, dV per (key tile, batch, unit) ---------------------------------------------

// MR row blocks of 16 keys per warp (64 * MR keys per CTA), BQ query rows per step (register budget).
template <int DQK, int DV, int MR, int BQ>
struct DkvCfg {
  static constexpr int TK = 64 * MR;
  static constexpr int PQ = DQK + 8, PV = DV + 8;
  static constexpr size_t bytes =
      sizeof(bf16) * (TK * PQ + TK * PV + 2 * BQ * PQ + 2 * BQ * PV) + sizeof(float) * 4 * BQ;
};

template <int DQK, int DV, int MR, int BQ>
__device__ __forceinline__ void dkv_block(int unit, int b, int u0, const FDims& d, float scale, float sl2,
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

// ---- backward (c): dQ per (query tile, query head, batch) -----------------------------------------

// MR row blocks of 16 queries per warp: 64 * MR queries per CTA; key tiles of KN (64 with MR 1;
// 32 with MR 2, where 64 would spill).
template <int DQK, int DV, int MR>
struct DqCfg {
  static constexpr int TM = 64 * MR, KN = MR == 1 ? 64 : 32;
  static constexpr int PQ = DQK + 8, PV = DV + 8;
  static constexpr size_t bytes = sizeof(bf16) * (TM * PQ + TM * PV + 2 * KN * PQ + 2 * KN * PV);
};

template <int DQK, int DV, int MR>
__device__ __forceinline__ void dq_block(int i, int b, int t0, const FDims& d, float scale, float sl2,
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

// (b) and (c) in one launch: blocks [0, n_dkv) are dK/dV blocks (key tile slowest, tile 0, the
// heaviest, first), the rest dQ blocks (heaviest query tiles first). The two parts are independent
// (both read D), so dQ blocks fill the multiprocessors while the long dK/dV blocks of the first key
// tiles finish, instead of waiting for the kernel boundary. Row blocks per warp: MRQ (dQ), MRK (dK/dV).
template <int DQK, int DV, int MRQ, int MRK, int BQ>
__global__ void __launch_bounds__(kThreads, 2) bwd_kernel(FDims d, int n_dkv, int nqt, float scale, float sl2,
                                                          const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                          const bf16* __restrict__ v, const bf16* __restrict__ dout,
                                                          const float* __restrict__ lse, const float* __restrict__ D,
                                                          bf16* __restrict__ dq, bf16* __restrict__ dk,
                                                          bf16* __restrict__ dv, float* __restrict__ pk,
                                                          float* __restrict__ pv) {
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

// ---- launchers ------------------------------------------------------------------------------------

FDims to_fdims(const AttnDims& a) {
  FDims d{};
  d.B = static_cast<int>(a.B);
  d.T = static_cast<int>(a.T);
  d.S = static_cast<int>(a.S);
  d.nq = static_cast<int>(a.nq);
  d.nk = static_cast<int>(a.nk);
  d.nv = static_cast<int>(a.nv);
  d.gk = d.nq / d.nk;
  d.gv = d.nq / d.nv;
  d.gu = std::gcd(d.gk, d.gv);
  d.units = d.nq / d.gu;
  d.off = d.S - d.T;
  return d;
}

// Tilings, picked per (d_qk, d_v) where the registers allow (255 per thread, 2 CTAs per SM; no
// spills but 8 bytes in the 64/64 dK/dV part): MR = 2 row blocks of 16 per warp (128-row tiles)
// let every B fragment read from shared memory feed two mma row blocks. Measured on the H100 (B8,
// T 2048 / 8192, fwd+bwd): the 128-row forward 6-10% faster, 128-key dK/dV 3% faster for MHA; for
// d_qk + d_v = 160 the 128-key dK/dV needs BQ = 16 and was 8% slower (GTA), so it stays at 64.
// Environment knobs, for measurement only (unset: the defaults below): GTA_FLASH_FWD_MR,
// GTA_FLASH_DQ_MR, GTA_FLASH_DKV_MR (1 or 2; 1 everywhere = the 64-row tiling of 9c04cc5).
int knob(const char* name, int def) {
  const char* e = std::getenv(name);
  return e && *e ? std::atoi(e) : def;
}
template <int DQK, int DV>
constexpr bool kFwd2 = DQK + DV <= 160 && DQK <= 96;  // forward: 128 queries per CTA
template <int DQK, int DV>
constexpr bool kDq2 = DQK == 64 && DV <= 96;  // dQ: 128 queries per CTA
template <int DQK, int DV>
constexpr bool kDkv2 = DQK + DV <= 128;  // dK/dV: 128 keys per CTA
template <int DQK, int DV>
constexpr int kBq1 = DQK + DV > 160 ? 32 : 64;  // dK/dV query rows per step, 64 keys per CTA
template <int DQK, int DV>
constexpr int kBq2 = 32;  // same, 128 keys per CTA
bool use_fwd2(int64_t dqk, int64_t dv) { return dqk + dv <= 160 && dqk <= 96 && knob("GTA_FLASH_FWD_MR", 2) == 2; }
bool use_dq2(int64_t dqk, int64_t dv) { return dqk == 64 && dv <= 96 && knob("GTA_FLASH_DQ_MR", 2) == 2; }
bool use_dkv2(int64_t dqk, int64_t dv) { return dqk + dv <= 128 && knob("GTA_FLASH_DKV_MR", 2) == 2; }

// How the dK/dV CTAs cut a unit of gu query heads. A CTA of key tile 0 sees every query of every
// head it owns, heads * T * keys (row, key) pairs; when that is more than an average CTA slot's
// share of the whole backward (dK/dV and dQ: 2 B n_q (T S - T^2 / 2) pairs over the SMs' CTA
// slots), the tail of those CTAs leaves the card idle (GTA: n_k = n_v = 1, every head in one unit).
// The cuts, tried in order for s = 1, 2, ... (divisors of gu), the first that fits taken:
//   split s: the unit's heads over s CTAs, each writing fp32 partials that reduce_units_kernel
//     adds in unit order (deterministic, at the cost of the partials' round trip through memory);
//   (wgmma kernels, two CTA shapes) 128 keys, each warpgroup 64 of them; then, when gu / s is
//     even, 64 keys with the heads split over the two warpgroups: the same work per CTA in half
//     the keys, so more, lighter CTAs, but each K/V row's Q and dO loads are shared by half as
//     many keys, so it comes second.
// Keys per CTA: wgmma 128 / 64 (heads split), one CTA per SM (registers); bwd_main 128 (MR 2) or
// 64, two per SM. GTA_FLASH_SPLIT (environment) forces s and GTA_FLASH_DKV_HEADS=0 / 1 the wgmma
// CTA shape, for measurement.
struct DkvPlan {
  int split;
  bool heads;  // wgmma: split the CTA's heads over its warpgroups
};
DkvPlan dkv_plan(const AttnDims& a) {
  const int gu = to_fdims(a).gu;
  const bool wg = sm90a::backward_available(a.dqk, a.dv);
  const int force_heads = knob("GTA_FLASH_DKV_HEADS", -1);
  auto heads_ok = [&](int s) { return wg && (gu / s) % 2 == 0 && force_heads != 0; };
  if (const int s = knob("GTA_FLASH_SPLIT", 0); s > 0) {
    const int split = gu % s == 0 ? s : 1;
    return {split, heads_ok(split) && force_heads == 1};
  }
  const double T = static_cast<double>(a.T), S = static_cast<double>(a.S);
  const double slots = (wg ? 1.0 : 2.0) * cuda::sm_count();
  const double avg = 2.0 * a.B * a.nq * (T * S - T * T / 2) / slots;
  const double keys = wg ? sm90a::dkv_tile_keys(false) : (use_dkv2(a.dqk, a.dv) ? 128 : 64);
  for (int s = 1; s < gu; ++s) {
    if (gu % s != 0) continue;
    if (force_heads != 1 && (gu / s) * T * keys <= avg) return {s, false};
    if (heads_ok(s) && (gu / s) * T * sm90a::dkv_tile_keys(true) <= avg) return {s, true};
  }
  return {gu, false};
}

// FDims of the backward: units of gu / plan.split query heads.
FDims bwd_fdims(const AttnDims& a, const DkvPlan& plan) {
  FDims d = to_fdims(a);
  d.gu /= plan.split;
  d.units = d.nq / d.gu;
  return d;
}

template <int DQK, int DV, int MR>
void forward_launch(const FDims& d, float scale, const void* q, const void* k, const void* v, void* out,
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
void forward_impl(const FDims& d, float scale, const void* q, const void* k, const void* v, void* out, float* lse) {
  if constexpr (kFwd2<DQK, DV>) {
    if (use_fwd2(DQK, DV)) return forward_launch<DQK, DV, 2>(d, scale, q, k, v, out, lse);
  }
  forward_launch<DQK, DV, 1>(d, scale, q, k, v, out, lse);
}

// Scratch layout: D [B*nq*T] f32, then (when needed) dk partials [B][units][S][dqk] f32, then dv
// partials [B][units][S][dv] f32; each part rounded up to 256 bytes.
struct ScratchLayout {
  size_t d_bytes = 0, pk_bytes = 0, pv_bytes = 0;
  size_t total() const { return d_bytes + pk_bytes + pv_bytes; }
};
size_t round256(size_t n) { return (n + 255) / 256 * 256; }
// d: the backward's FDims (bwd_fdims), whose units decide the partials.
ScratchLayout scratch_layout(const AttnDims& a, const FDims& d) {
  ScratchLayout s;
  s.d_bytes = round256(sizeof(float) * std::max<int64_t>(1, a.B * a.nq * a.T));
  if (d.gu != d.gk) s.pk_bytes = round256(sizeof(float) * a.B * d.units * a.S * a.dqk);
  if (d.gu != d.gv) s.pv_bytes = round256(sizeof(float) * a.B * d.units * a.S * a.dv);
  return s;
}

struct BwdArgs {
  float scale, sl2;
  const bf16 *q, *k, *v, *dout;
  const float *lse, *D;
  bf16 *dq, *dk, *dv;
  float *pk, *pv;
};

template <int DQK, int DV, int MRQ, int MRK, int BQ>
void bwd_launch(const FDims& d, const BwdArgs& x, cudaStream_t stream) {
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
void bwd_main(const FDims& d, const BwdArgs& x, cudaStream_t stream) {
  const bool q2 = use_dq2(DQK, DV), k2 = use_dkv2(DQK, DV);
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
void backward_impl(const AttnDims& a, float scale, const void* qv, const void* kv, const void* vv, const void* outv,
                   const void* doutv, const float* lse, void* scratch, void* dqv, void* dkv, void* dvv) {
  const DkvPlan plan = dkv_plan(a);
  const FDims d = bwd_fdims(a, plan);
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
  if (sm90a::backward_available(DQK, DV)) {
    const sm90a::BwdProblem p{d.B,  d.T,        d.S,   d.nq, d.nk, d.nv, d.gk, d.gv, d.gu, d.units, d.off,
                              DQK,  DV,         plan.heads, scale, q, k,   v,    dout, lse,  D,       dq,
                              dk,   dv,         pk,    pv};
    const bool two = knob("GTA_FLASH_STREAMS", 2) == 2;
    if (two) cuda::fork_side();
    sm90a::dkv(p, two ? cuda::side_stream() : stream);
    sm90a::dq(p, stream);
    if (two) cuda::join_side();
  } else {
    bwd_main<DQK, DV>(d, BwdArgs{scale, sl2, q, k, v, dout, lse, D, dq, dk, dv, pk, pv}, stream);
  }
  if (pk) {
    const int64_t n = a.B * a.S * a.nk * a.dqk / 2;
    reduce_units_kernel<<<cuda::grid_for(n, 256), 256, 0, stream>>>(pk, dk, d.B, d.S, d.nk, DQK, d.units,
                                                                     d.gk / d.gu);
    GTA_CUDA_CHECK_LAUNCH();
  }
  if (pv) {
    const int64_t n = a.B * a.S * a.nv * a.dv / 2;
    reduce_units_kernel<<<cuda::grid_for(n, 256), 256, 0, stream>>>(pv, dv, d.B, d.S, d.nv, DV, d.units,
                                                                     d.gv / d.gu);
    GTA_CUDA_CHECK_LAUNCH();
  }
}

bool width_ok(int64_t dqk, int64_t dv) {
  return (dqk == 64 || dqk == 96 || dqk == 128) && (dv == 64 || dv == 96 || dv == 128 || dv == 192);
}

// Calls F<DQK, DV>::run(args...) for the (d_qk, d_v) pair.
#define GTA_FLASH_DISPATCH(DQK_, DV_, CALL)                                          \
  switch ((DQK_) * 1000 + (DV_)) {                                                   \
    case 64064: CALL(64, 64); break;                                                 \
    case 64096: CALL(64, 96); break;                                                 \
    case 64128: CALL(64, 128); break;                                                \
    case 64192: CALL(64, 192); break;                                                \
    case 96064: CALL(96, 64); break;                                                 \
    case 96096: CALL(96, 96); break;                                                 \
    case 96128: CALL(96, 128); break;                                                \
    case 96192: CALL(96, 192); break;                                                \
    case 128064: CALL(128, 64); break;                                               \
    case 128096: CALL(128, 96); break;                                               \
    case 128128: CALL(128, 128); break;                                              \
    case 128192: CALL(128, 192); break;                                              \
    default: fail("flash attention: head widths d_qk {} d_v {} not supported", DQK_, DV_); \
  }

}  // namespace

bool flash_attention_supported(const AttnDims& a) {
  if (!width_ok(a.dqk, a.dv)) return false;
  if (a.B < 1 || a.T < 1 || a.S < a.T || a.nq < 1 || a.nk < 1 || a.nv < 1) return false;
  if (a.nq % a.nk != 0 || a.nq % a.nv != 0) return false;
  constexpr int64_t kInt = (1ll << 31) - 1;
  if (a.B > 65535 || a.nq > kInt || (a.T + BM - 1) / BM > 65535 || (a.S + BN - 1) / BN > 65535) return false;
  if (a.S + BN > kInt || a.B * a.T * a.nq * 32 > (1ll << 62)) return false;
  if (a.B * a.nq * ((a.S + BN - 1) / BN + (a.T + BM - 1) / BM) > kInt) return false;  // backward's 1-D grid
  return true;
}

void flash_attention_forward(const AttnDims& a, float scale, const void* q, const void* k, const void* v, void* out,
                             float* lse) {
  GTA_CHECK(flash_attention_supported(a), "flash attention: sizes not supported (see flash_attention_supported)");
  if (sm90a::flash_forward_available(a)) return sm90a::flash_forward(a, scale, q, k, v, out, lse);
  const FDims d = to_fdims(a);
#define GTA_FLASH_FWD(X, Y) forward_impl<X, Y>(d, scale, q, k, v, out, lse)
  GTA_FLASH_DISPATCH(a.dqk, a.dv, GTA_FLASH_FWD)
#undef GTA_FLASH_FWD
}

size_t flash_attention_backward_scratch_bytes(const AttnDims& a) {
  return scratch_layout(a, bwd_fdims(a, dkv_plan(a))).total();
}

void flash_attention_backward(const AttnDims& a, float scale, const void* q, const void* k, const void* v,
                              const void* out, const void* dout, const float* lse, void* scratch, void* dq, void* dk,
                              void* dv) {
  GTA_CHECK(flash_attention_supported(a), "flash attention: sizes not supported (see flash_attention_supported)");
#define GTA_FLASH_BWD(X, Y) backward_impl<X, Y>(a, scale, q, k, v, out, dout, lse, scratch, dq, dk, dv)
  GTA_FLASH_DISPATCH(a.dqk, a.dv, GTA_FLASH_BWD)
#undef GTA_FLASH_BWD
}

}  // namespace gta::kernels
