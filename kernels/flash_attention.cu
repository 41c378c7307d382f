// FlashAttention-2-style causal attention on the tensor cores: bf16 operands, fp32 accumulation
// (mma.sync.m16n8k16), for the general primitive of docs/attention.md. Tested against the CPU op
// and the reference kernels (kernels/attention_ref.cu), which keep every other case.
//
// Math. Batch b, query head i, query t at position p = S - T + t, key head i/(n_q/n_k), value head
// i/(n_q/n_v), keys u <= p:
//   s_u = scale q_t . k_u,   lse_t = log sum_u e^{s_u},   P_u = e^{s_u - lse_t},   out_t = sum_u P_u v_u
//   D_t = dout_t . out_t (= sum_u P_u dP_u; the bf16-rounded out, as FlashAttention does)
//   dP_u = dout_t . v_u,   dS_u = P_u (dP_u - D_t)
//   dq_t = scale sum_u dS_u k_u,   dk_u = scale sum_{i,t} dS_{i,t,u} q_{i,t},   dv_u = sum_{i,t} P_{i,t,u} dout_{i,t}
// Exponentials are exp2f of scores pre-multiplied by scale*log2(e) (one FMA per element); lse is
// stored in natural-log units.
//
// Tiling (CTA = 4 warps, 128 threads; every warp owns 16 rows of the 64-row tile and keeps them in
// mma accumulators; registers: the 64/64 forward at most 170 (3 CTAs per SM), the other kernels up
// to 255 (launch bounds); shared-memory rows are padded by 16 bytes so ldmatrix is free of bank
// conflicts; K/V (or Q/dO) tiles are double-buffered with cp.async, zero-filled past the end):
//   forward: one CTA per (64 queries, query head, batch), heaviest query tiles launched first. Q
//     fragments stay in registers; loop over key tiles of 64 up to the causal diagonal (tiles past
//     it are never touched, only tiles crossing it are masked): S = Q K^T, online softmax (running
//     max m and sum l per row, O rescaled by e^{m_old - m_new}), P converted in registers from
//     accumulator to bf16 A fragment, O += P V (V through ldmatrix.trans). Rows >= T are not
//     stored; only lse is saved.
//   backward (no atomics; bit-identical run to run):
//     (a) D_t per row (fp32 sum of bf16 products), one warp per row.
//     (b) dK/dV: one CTA per (64 keys, batch, unit), a unit being the query heads that share both
//         the key head and the value head (gcd(n_q/n_k, n_q/n_v) consecutive heads). Its K and V
//         tiles are loaded once; it loops over the unit's heads and, per head, over the query
//         tiles at or after the diagonal: S^T = K Q^T, P^T = exp2(S^T - lse), dV += P^T dO,
//         dP^T = V dO^T, dS^T = P^T (dP^T - D), dK += dS^T Q, all in registers. When the unit is
//         the whole key (value) group, dk (dv) is written in bf16 directly; otherwise each unit
//         writes fp32 partials to scratch and a reduce kernel adds a head's units in index order
//         (e.g. GVA, n_k 1 and n_v 4: dv direct, dk = sum of 4 partials).
//     (c) dQ: one CTA per (64 queries, query head, batch), loop over key tiles up to the diagonal:
//         S, P, dP = dO V^T, dS, dQ += dS K (K through ldmatrix.trans); scaled once at the end.
//     (b) and (c) are independent and share one launch (bwd_kernel): the dK/dV blocks first, the
//     heaviest first, then the dQ blocks, which fill the machine while the long blocks finish.
// Shared key/value heads are read by head index, never materialised per query head. Offsets are
// 64-bit. Widths are template parameters: d_qk in {64, 96, 128}, d_v in {64, 96, 128, 192}.
#include <cuda_bf16.h>

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <numeric>

#include "core/cuda_context.h"
#include "kernels/flash_attention.h"

namespace gta::kernels {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 128;  // 4 warps
constexpr int BM = 64;         // queries per forward / dq CTA (16 per warp)
constexpr int BN = 64;         // keys per tile (dk/dv CTA: 16 per warp)
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct FDims {
  int B, T, S, nq, nk, nv;
  int gk, gv, gu, units;  // query heads per key head / value head / unit; units = n_q / gu
  int off;                // S - T
};

// ---- PTX wrappers ---------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared, zero-filled when !valid (src is then not read).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 4 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm4(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
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
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
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

// acc[M x N] += A (M=16 rows from shared, K wide) * X^T, X an [N][K] shared tile (both non-trans).
template <int K, int N, int PA, int PX>
__device__ __forceinline__ void mma_abt(float (&acc)[N / 8][4], const bf16* A, int arow, const bf16* X, int lane) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t a[4];
    ldsm4(a, a_addr<PA>(A, arow, kk * 16, lane));
#pragma unroll
    for (int nn = 0; nn < N / 16; ++nn) {
      uint32_t b[4];
      ldsm4(b, bt_addr<PX>(X, nn * 16, kk * 16, lane));
      mma(acc[2 * nn], a, b[0], b[1]);
      mma(acc[2 * nn + 1], a, b[2], b[3]);
    }
  }
}
// acc[16 x N] += Pf (16 x K, bf16 A fragments in registers) * Y, Y a [K][N] shared tile (trans).
template <int K, int N, int PY>
__device__ __forceinline__ void mma_py(float (&acc)[N / 8][4], const uint32_t (&pf)[K / 16][4], const bf16* Y,
                                       int lane) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
#pragma unroll
    for (int nn = 0; nn < N / 16; ++nn) {
      uint32_t b[4];
      ldsm4t(b, bk_addr<PY>(Y, kk * 16, nn * 16, lane));
      mma(acc[2 * nn], pf[kk], b[0], b[1]);
      mma(acc[2 * nn + 1], pf[kk], b[2], b[3]);
    }
  }
}
// Accumulator (16 x N fp32) -> bf16 A fragments (16 x N as the K dimension of the next product).
template <int N>
__device__ __forceinline__ void to_a_frag(uint32_t (&pf)[N / 16][4], const float (&s)[N / 8][4]) {
#pragma unroll
  for (int kk = 0; kk < N / 16; ++kk) {
    pf[kk][0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
    pf[kk][1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
    pf[kk][2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    pf[kk][3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
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

// ---- forward --------------------------------------------------------------------------------------

template <int DQK, int DV>
struct FwdSmem {
  static constexpr int PQ = DQK + 8, PV = DV + 8;
  static constexpr size_t bytes = sizeof(bf16) * (BM * PQ + 2 * BN * PQ + 2 * BN * PV);
};

template <int DQK, int DV>
__global__ void __launch_bounds__(kThreads, DQK + DV <= 128 ? 3 : 1) fwd_kernel(FDims d, float sl2, const bf16* __restrict__ q,
                                                       const bf16* __restrict__ k, const bf16* __restrict__ v,
                                                       bf16* __restrict__ out, float* __restrict__ lse) {
  constexpr int PQ = DQK + 8, PV = DV + 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw);  // [BM][PQ]
  bf16* Ks = Qs + BM * PQ;                        // [2][BN][PQ]
  bf16* Vs = Ks + 2 * BN * PQ;                    // [2][BN][PV]
  const int i = blockIdx.x, b = blockIdx.y;
  const int t0 = (gridDim.z - 1 - blockIdx.z) * BM;  // heaviest tiles first
  const int kh = i / d.gk, vh = i / d.gv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t kstride = static_cast<int64_t>(d.nk) * DQK, vstride = static_cast<int64_t>(d.nv) * DV;
  const bf16* kb = k + (static_cast<int64_t>(b) * d.S * d.nk + kh) * DQK;  // key u at kb + u * kstride
  const bf16* vb = v + (static_cast<int64_t>(b) * d.S * d.nv + vh) * DV;
  const int kend = min(d.S, d.off + t0 + BM);  // keys [0, kend) are visible to some row of the tile
  const int ntiles = (kend + BN - 1) / BN;

  load_tile<BM, DQK, PQ>(Qs, q + ((static_cast<int64_t>(b) * d.T + t0) * d.nq + i) * DQK,
                         static_cast<int64_t>(d.nq) * DQK, d.T - t0);
  load_tile<BN, DQK, PQ>(Ks, kb, kstride, d.S);
  load_tile<BN, DV, PV>(Vs, vb, vstride, d.S);
  cp_commit();
  cp_wait_all();
  __syncthreads();
  uint32_t qf[DQK / 16][4];
#pragma unroll
  for (int kk = 0; kk < DQK / 16; ++kk) ldsm4(qf[kk], a_addr<PQ>(Qs, warp * 16, kk * 16, lane));

  float o[DV / 8][4];
  zero(o);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // per row g, g + 8; m in log2 units
  const int r_lo = t0 + warp * 16 + lane / 4;                // query index of rows g and g + 8
  const int pos[2] = {d.off + r_lo, d.off + r_lo + 8};

  for (int n = 0; n < ntiles; ++n) {
    const int u0 = n * BN, buf = n & 1;
    if (n > 0) {
      cp_wait_all();
      __syncthreads();
    }
    if (n + 1 < ntiles) {  // prefetch the next tile into the other buffer (free since the barrier)
      const int u1 = u0 + BN;
      load_tile<BN, DQK, PQ>(Ks + (buf ^ 1) * BN * PQ, kb + u1 * kstride, kstride, d.S - u1);
      load_tile<BN, DV, PV>(Vs + (buf ^ 1) * BN * PV, vb + u1 * vstride, vstride, d.S - u1);
    }
    cp_commit();
    const bf16* Kt = Ks + buf * BN * PQ;
    const bf16* Vt = Vs + buf * BN * PV;

    float s[BN / 8][4];
    zero(s);
#pragma unroll
    for (int kk = 0; kk < DQK / 16; ++kk)
#pragma unroll
      for (int nn = 0; nn < BN / 16; ++nn) {
        uint32_t bb[4];
        ldsm4(bb, bt_addr<PQ>(Kt, nn * 16, kk * 16, lane));
        mma(s[2 * nn], qf[kk], bb[0], bb[1]);
        mma(s[2 * nn + 1], qf[kk], bb[2], bb[3]);
      }
    const bool masked = u0 + BN - 1 > d.off + t0;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[j][e] * sl2;
        if (masked && u0 + j * 8 + 2 * (lane % 4) + (e & 1) > pos[e / 2]) x = -INFINITY;
        s[j][e] = x;
      }
    // online softmax, rows g (e = 0, 1) and g + 8 (e = 2, 3); a row's 64 columns live in 4 lanes
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = m[h];
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * h], s[j][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mb = mx == -INFINITY ? 0.f : mx;
      const float alpha = exp2f(m[h] - mb);  // m = -inf: 0
      m[h] = mx;
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        s[j][2 * h] = exp2f(s[j][2 * h] - mb);
        s[j][2 * h + 1] = exp2f(s[j][2 * h + 1] - mb);
        sum += s[j][2 * h] + s[j][2 * h + 1];
      }
      l[h] = l[h] * alpha + sum;
#pragma unroll
      for (int j = 0; j < DV / 8; ++j) {
        o[j][2 * h] *= alpha;
        o[j][2 * h + 1] *= alpha;
      }
    }
    uint32_t pf[BN / 16][4];
    to_a_frag<BN>(pf, s);
    mma_py<BN, DV, PV>(o, pf, Vt, lane);
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = l[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int t = r_lo + 8 * h;
    if (t >= d.T) continue;
    const float inv = 1.f / sum;
    bf16* orow = out + ((static_cast<int64_t>(b) * d.T + t) * d.nq + i) * DV + 2 * (lane % 4);
#pragma unroll
    for (int j = 0; j < DV / 8; ++j)
      *reinterpret_cast<uint32_t*>(orow + j * 8) = pack_bf16(o[j][2 * h] * inv, o[j][2 * h + 1] * inv);
    if (lane % 4 == 0) lse[(static_cast<int64_t>(b) * d.nq + i) * d.T + t] = m[h] * kLn2 + logf(sum);
  }
}

// ---- backward (a): D = dout . out ------------------------------------------------------------------

template <int DV>
__global__ void __launch_bounds__(256) dsum_kernel(FDims d, const bf16* __restrict__ out,
                                                   const bf16* __restrict__ dout, float* __restrict__ D) {
  const int64_t rows = static_cast<int64_t>(d.B) * d.T * d.nq;  // [B, T, nq] order
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (w >= rows) return;
  float acc = 0.f;
  if (lane * 8 < DV) {
    const uint4 a = *reinterpret_cast<const uint4*>(out + w * DV + lane * 8);
    const uint4 g = *reinterpret_cast<const uint4*>(dout + w * DV + lane * 8);
    const __nv_bfloat162* pa = reinterpret_cast<const __nv_bfloat162*>(&a);
    const __nv_bfloat162* pg = reinterpret_cast<const __nv_bfloat162*>(&g);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 x = __bfloat1622float2(pa[j]), y = __bfloat1622float2(pg[j]);
      acc = fmaf(x.x, y.x, acc);
      acc = fmaf(x.y, y.y, acc);
    }
  }
#pragma unroll
  for (int s = 16; s > 0; s /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, s);
  if (lane == 0) {
    const int i = static_cast<int>(w % d.nq);
    const int64_t bt = w / d.nq;
    const int t = static_cast<int>(bt % d.T), b = static_cast<int>(bt / d.T);
    D[(static_cast<int64_t>(b) * d.nq + i) * d.T + t] = acc;
  }
}

// ---- backward (b): dK, dV per (key tile, batch, unit) ---------------------------------------------

template <int DQK, int DV>
struct DkvCfg {
  static constexpr int BQ = DQK + DV > 160 ? 32 : 64;  // query rows per step (register budget)
  static constexpr int PQ = DQK + 8, PV = DV + 8;
  static constexpr size_t bytes =
      sizeof(bf16) * (BN * PQ + BN * PV + 2 * BQ * PQ + 2 * BQ * PV) + sizeof(float) * 4 * BQ;
};

template <int DQK, int DV>
__device__ __forceinline__ void dkv_block(int unit, int b, int u0, const FDims& d, float scale, float sl2,
                                          const bf16* __restrict__ q, const bf16* __restrict__ k,
                                          const bf16* __restrict__ v, const bf16* __restrict__ dout,
                                          const float* __restrict__ lse, const float* __restrict__ D,
                                          bf16* __restrict__ dk, bf16* __restrict__ dv, float* __restrict__ pk,
                                          float* __restrict__ pv) {
  using Cfg = DkvCfg<DQK, DV>;
  constexpr int BQ = Cfg::BQ, PQ = Cfg::PQ, PV = Cfg::PV;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* Ks = reinterpret_cast<bf16*>(smem_raw);  // [BN][PQ]
  bf16* Vs = Ks + BN * PQ;                        // [BN][PV]
  bf16* Qs = Vs + BN * PV;                        // [2][BQ][PQ]
  bf16* Gs = Qs + 2 * BQ * PQ;                    // [2][BQ][PV]  dout
  float* Ls = reinterpret_cast<float*>(Gs + 2 * BQ * PV);  // [2][BQ]  lse
  float* Ds = Ls + 2 * BQ;                                 // [2][BQ]  D
  const int h0 = unit * d.gu, kh = h0 / d.gk, vh = h0 / d.gv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t qstride = static_cast<int64_t>(d.nq) * DQK, gstride = static_cast<int64_t>(d.nq) * DV;
  const int64_t kstride = static_cast<int64_t>(d.nk) * DQK, vstride = static_cast<int64_t>(d.nv) * DV;

  const int tfirst = max(0, u0 - d.off) / BQ * BQ;  // first query tile that sees a key of this tile
  const int ntq = (d.T - tfirst + BQ - 1) / BQ;
  const int steps = d.gu * ntq;
  auto issue = [&](int st, int buf) {
    const int i = h0 + st / ntq, t0 = tfirst + (st % ntq) * BQ;
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
  load_tile<BN, DQK, PQ>(Ks, k + ((static_cast<int64_t>(b) * d.S + u0) * d.nk + kh) * DQK, kstride, d.S - u0);
  load_tile<BN, DV, PV>(Vs, v + ((static_cast<int64_t>(b) * d.S + u0) * d.nv + vh) * DV, vstride, d.S - u0);
  issue(0, 0);
  cp_commit();

  float dka[DQK / 8][4], dva[DV / 8][4];
  zero(dka);
  zero(dva);
  const int key_lo = u0 + warp * 16 + lane / 4;  // key of accumulator rows g and g + 8

  for (int st = 0; st < steps; ++st) {
    const int buf = st & 1;
    const int t0 = tfirst + (st % ntq) * BQ;
    cp_wait_all();
    __syncthreads();
    if (st + 1 < steps) issue(st + 1, buf ^ 1);
    cp_commit();
    const bf16* Qt = Qs + buf * BQ * PQ;
    const bf16* Gt = Gs + buf * BQ * PV;
    const float* Lt = Ls + buf * BQ;
    const float* Dt = Ds + buf * BQ;

    // S^T = K Q^T (16 keys x BQ queries per warp), P^T = exp2(S^T scale log2e - lse log2e)
    float sp[BQ / 8][4];
    zero(sp);
    mma_abt<DQK, BQ, PQ, PQ>(sp, Ks, warp * 16, Qt, lane);
    const bool masked = u0 + BN - 1 > d.off + t0;
#pragma unroll
    for (int j = 0; j < BQ / 8; ++j) {
      const int c = j * 8 + 2 * (lane % 4);
      const float2 L = *reinterpret_cast<const float2*>(Lt + c);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = exp2f(fmaf(sp[j][e], sl2, -((e & 1) ? L.y : L.x) * kLog2e));
        if (masked && key_lo + 8 * (e / 2) > d.off + t0 + c + (e & 1)) x = 0.f;
        sp[j][e] = x;
      }
    }
    {  // dV += P^T dO
      uint32_t pf[BQ / 16][4];
      to_a_frag<BQ>(pf, sp);
      mma_py<BQ, DV, PV>(dva, pf, Gt, lane);
    }
    // dP^T = V dO^T, dS^T = P^T (dP^T - D)
    float dp[BQ / 8][4];
    zero(dp);
    mma_abt<DV, BQ, PV, PV>(dp, Vs, warp * 16, Gt, lane);
#pragma unroll
    for (int j = 0; j < BQ / 8; ++j) {
      const float2 Dv = *reinterpret_cast<const float2*>(Dt + j * 8 + 2 * (lane % 4));
#pragma unroll
      for (int e = 0; e < 4; ++e) dp[j][e] = sp[j][e] * (dp[j][e] - ((e & 1) ? Dv.y : Dv.x));
    }
    {  // dK += dS^T Q
      uint32_t sf[BQ / 16][4];
      to_a_frag<BQ>(sf, dp);
      mma_py<BQ, DQK, PQ>(dka, sf, Qt, lane);
    }
  }

  // write back: bf16 when this unit is the whole key (value) group, else fp32 partials
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int u = key_lo + 8 * h;
    if (u >= d.S) continue;
    const int c = 2 * (lane % 4);
    if (d.gu == d.gk) {
      bf16* row = dk + ((static_cast<int64_t>(b) * d.S + u) * d.nk + kh) * DQK + c;
#pragma unroll
      for (int j = 0; j < DQK / 8; ++j)
        *reinterpret_cast<uint32_t*>(row + j * 8) = pack_bf16(dka[j][2 * h] * scale, dka[j][2 * h + 1] * scale);
    } else {
      float* row = pk + ((static_cast<int64_t>(b) * d.units + unit) * d.S + u) * DQK + c;
#pragma unroll
      for (int j = 0; j < DQK / 8; ++j)
        *reinterpret_cast<float2*>(row + j * 8) = make_float2(dka[j][2 * h] * scale, dka[j][2 * h + 1] * scale);
    }
    if (d.gu == d.gv) {
      bf16* row = dv + ((static_cast<int64_t>(b) * d.S + u) * d.nv + vh) * DV + c;
#pragma unroll
      for (int j = 0; j < DV / 8; ++j)
        *reinterpret_cast<uint32_t*>(row + j * 8) = pack_bf16(dva[j][2 * h], dva[j][2 * h + 1]);
    } else {
      float* row = pv + ((static_cast<int64_t>(b) * d.units + unit) * d.S + u) * DV + c;
#pragma unroll
      for (int j = 0; j < DV / 8; ++j)
        *reinterpret_cast<float2*>(row + j * 8) = make_float2(dva[j][2 * h], dva[j][2 * h + 1]);
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

template <int DQK, int DV>
struct DqSmem {
  static constexpr int PQ = DQK + 8, PV = DV + 8;
  static constexpr size_t bytes = sizeof(bf16) * (BM * PQ + BM * PV + 2 * BN * PQ + 2 * BN * PV);
};

template <int DQK, int DV>
__device__ __forceinline__ void dq_block(int i, int b, int t0, const FDims& d, float scale, float sl2,
                                         const bf16* __restrict__ q, const bf16* __restrict__ k,
                                         const bf16* __restrict__ v, const bf16* __restrict__ dout,
                                         const float* __restrict__ lse, const float* __restrict__ D,
                                         bf16* __restrict__ dq) {
  constexpr int PQ = DQK + 8, PV = DV + 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw);  // [BM][PQ]
  bf16* Gs = Qs + BM * PQ;                        // [BM][PV]
  bf16* Ks = Gs + BM * PV;                        // [2][BN][PQ]
  bf16* Vs = Ks + 2 * BN * PQ;                    // [2][BN][PV]
  const int kh = i / d.gk, vh = i / d.gv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t kstride = static_cast<int64_t>(d.nk) * DQK, vstride = static_cast<int64_t>(d.nv) * DV;
  const bf16* kb = k + (static_cast<int64_t>(b) * d.S * d.nk + kh) * DQK;
  const bf16* vb = v + (static_cast<int64_t>(b) * d.S * d.nv + vh) * DV;
  const int kend = min(d.S, d.off + t0 + BM);
  const int ntiles = (kend + BN - 1) / BN;

  load_tile<BM, DQK, PQ>(Qs, q + ((static_cast<int64_t>(b) * d.T + t0) * d.nq + i) * DQK,
                         static_cast<int64_t>(d.nq) * DQK, d.T - t0);
  load_tile<BM, DV, PV>(Gs, dout + ((static_cast<int64_t>(b) * d.T + t0) * d.nq + i) * DV,
                        static_cast<int64_t>(d.nq) * DV, d.T - t0);
  load_tile<BN, DQK, PQ>(Ks, kb, kstride, d.S);
  load_tile<BN, DV, PV>(Vs, vb, vstride, d.S);
  cp_commit();

  const int r_lo = t0 + warp * 16 + lane / 4;
  const int pos[2] = {d.off + r_lo, d.off + r_lo + 8};
  float L2[2], Dr[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int t = r_lo + 8 * h;
    const int64_t row = (static_cast<int64_t>(b) * d.nq + i) * d.T + t;
    L2[h] = t < d.T ? lse[row] * kLog2e : 0.f;
    Dr[h] = t < d.T ? D[row] : 0.f;
  }
  float dqa[DQK / 8][4];
  zero(dqa);

  for (int n = 0; n < ntiles; ++n) {
    const int u0 = n * BN, buf = n & 1;
    cp_wait_all();
    __syncthreads();
    if (n + 1 < ntiles) {
      const int u1 = u0 + BN;
      load_tile<BN, DQK, PQ>(Ks + (buf ^ 1) * BN * PQ, kb + u1 * kstride, kstride, d.S - u1);
      load_tile<BN, DV, PV>(Vs + (buf ^ 1) * BN * PV, vb + u1 * vstride, vstride, d.S - u1);
    }
    cp_commit();
    const bf16* Kt = Ks + buf * BN * PQ;
    const bf16* Vt = Vs + buf * BN * PV;

    float sp[BN / 8][4];
    zero(sp);
    mma_abt<DQK, BN, PQ, PQ>(sp, Qs, warp * 16, Kt, lane);
    const bool masked = u0 + BN - 1 > d.off + t0;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = exp2f(fmaf(sp[j][e], sl2, -L2[e / 2]));
        if (masked && u0 + j * 8 + 2 * (lane % 4) + (e & 1) > pos[e / 2]) x = 0.f;
        sp[j][e] = x;
      }
    float dp[BN / 8][4];
    zero(dp);
    mma_abt<DV, BN, PV, PV>(dp, Gs, warp * 16, Vt, lane);
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) dp[j][e] = sp[j][e] * (dp[j][e] - Dr[e / 2]);
    uint32_t sf[BN / 16][4];
    to_a_frag<BN>(sf, dp);
    mma_py<BN, DQK, PQ>(dqa, sf, Kt, lane);
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int t = r_lo + 8 * h;
    if (t >= d.T) continue;
    bf16* row = dq + ((static_cast<int64_t>(b) * d.T + t) * d.nq + i) * DQK + 2 * (lane % 4);
#pragma unroll
    for (int j = 0; j < DQK / 8; ++j)
      *reinterpret_cast<uint32_t*>(row + j * 8) = pack_bf16(dqa[j][2 * h] * scale, dqa[j][2 * h + 1] * scale);
  }
}

// (b) and (c) in one launch: blocks [0, n_dkv) are dK/dV blocks (key tile slowest, tile 0, the
// heaviest, first), the rest dQ blocks (heaviest query tiles first). The two parts are independent
// (both read D), so dQ blocks fill the multiprocessors while the long dK/dV blocks of the first key
// tiles finish, instead of waiting for the kernel boundary.
template <int DQK, int DV>
__global__ void __launch_bounds__(kThreads) bwd_kernel(FDims d, int n_dkv, int nqt, float scale, float sl2,
                                                       const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                       const bf16* __restrict__ v, const bf16* __restrict__ dout,
                                                       const float* __restrict__ lse, const float* __restrict__ D,
                                                       bf16* __restrict__ dq, bf16* __restrict__ dk,
                                                       bf16* __restrict__ dv, float* __restrict__ pk,
                                                       float* __restrict__ pv) {
  const int blk = static_cast<int>(blockIdx.x);
  if (blk < n_dkv) {
    const int unit = blk % d.units, rest = blk / d.units;
    dkv_block<DQK, DV>(unit, rest % d.B, rest / d.B * BN, d, scale, sl2, q, k, v, dout, lse, D, dk, dv, pk, pv);
  } else {
    const int j = blk - n_dkv;
    const int i = j % d.nq, rest = j / d.nq;
    dq_block<DQK, DV>(i, rest % d.B, (nqt - 1 - rest / d.B) * BM, d, scale, sl2, q, k, v, dout, lse, D, dq);
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

template <typename K>
void set_smem(K kernel, size_t bytes) {
  int dev = 0, optin = 0;
  GTA_CUDA_CHECK(cudaGetDevice(&dev));
  GTA_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  GTA_CHECK(bytes <= static_cast<size_t>(optin),
            "flash attention (CUDA): {} bytes of shared memory per block needed, the device has {}", bytes, optin);
  GTA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

template <int DQK, int DV>
void forward_impl(const FDims& d, float scale, const void* q, const void* k, const void* v, void* out, float* lse) {
  const size_t smem = FwdSmem<DQK, DV>::bytes;
  set_smem(fwd_kernel<DQK, DV>, smem);
  dim3 grid(d.nq, d.B, (d.T + BM - 1) / BM);
  fwd_kernel<DQK, DV><<<grid, kThreads, smem, cuda::current_stream()>>>(
      d, scale * kLog2e, static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
      static_cast<bf16*>(out), lse);
  GTA_CUDA_CHECK_LAUNCH();
}

// Scratch layout: D [B*nq*T] f32, then (when needed) dk partials [B][units][S][dqk] f32, then dv
// partials [B][units][S][dv] f32; each part rounded up to 256 bytes.
struct ScratchLayout {
  size_t d_bytes = 0, pk_bytes = 0, pv_bytes = 0;
  size_t total() const { return d_bytes + pk_bytes + pv_bytes; }
};
size_t round256(size_t n) { return (n + 255) / 256 * 256; }
ScratchLayout scratch_layout(const AttnDims& a) {
  const FDims d = to_fdims(a);
  ScratchLayout s;
  s.d_bytes = round256(sizeof(float) * std::max<int64_t>(1, a.B * a.nq * a.T));
  if (d.gu != d.gk) s.pk_bytes = round256(sizeof(float) * a.B * d.units * a.S * a.dqk);
  if (d.gu != d.gv) s.pv_bytes = round256(sizeof(float) * a.B * d.units * a.S * a.dv);
  return s;
}

template <int DQK, int DV>
void backward_impl(const AttnDims& a, float scale, const void* qv, const void* kv, const void* vv, const void* outv,
                   const void* doutv, const float* lse, void* scratch, void* dqv, void* dkv, void* dvv) {
  const FDims d = to_fdims(a);
  const ScratchLayout sl = scratch_layout(a);
  unsigned char* sp = static_cast<unsigned char*>(scratch);
  float* D = reinterpret_cast<float*>(sp);
  float* pk = sl.pk_bytes ? reinterpret_cast<float*>(sp + sl.d_bytes) : nullptr;
  float* pv = sl.pv_bytes ? reinterpret_cast<float*>(sp + sl.d_bytes + sl.pk_bytes) : nullptr;
  const bf16 *q = static_cast<const bf16*>(qv), *k = static_cast<const bf16*>(kv), *v = static_cast<const bf16*>(vv);
  const bf16 *out = static_cast<const bf16*>(outv), *dout = static_cast<const bf16*>(doutv);
  bf16 *dq = static_cast<bf16*>(dqv), *dk = static_cast<bf16*>(dkv), *dv = static_cast<bf16*>(dvv);
  cudaStream_t stream = cuda::current_stream();
  const float sl2 = scale * kLog2e;
  {
    const int64_t rows = a.B * a.T * a.nq;
    dsum_kernel<DV><<<static_cast<unsigned>((rows * 32 + 255) / 256), 256, 0, stream>>>(d, out, dout, D);
    GTA_CUDA_CHECK_LAUNCH();
  }
  {
    const size_t smem = std::max(DkvCfg<DQK, DV>::bytes, DqSmem<DQK, DV>::bytes);
    set_smem(bwd_kernel<DQK, DV>, smem);
    const int nqt = (d.T + BM - 1) / BM;
    const int64_t n_dkv = static_cast<int64_t>(d.units) * d.B * ((d.S + BN - 1) / BN);
    const int64_t n_dq = static_cast<int64_t>(d.nq) * d.B * nqt;
    bwd_kernel<DQK, DV><<<static_cast<unsigned>(n_dkv + n_dq), kThreads, smem, stream>>>(
        d, static_cast<int>(n_dkv), nqt, scale, sl2, q, k, v, dout, lse, D, dq, dk, dv, pk, pv);
    GTA_CUDA_CHECK_LAUNCH();
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
  const FDims d = to_fdims(a);
#define GTA_FLASH_FWD(X, Y) forward_impl<X, Y>(d, scale, q, k, v, out, lse)
  GTA_FLASH_DISPATCH(a.dqk, a.dv, GTA_FLASH_FWD)
#undef GTA_FLASH_FWD
}

size_t flash_attention_backward_scratch_bytes(const AttnDims& a) { return scratch_layout(a).total(); }

void flash_attention_backward(const AttnDims& a, float scale, const void* q, const void* k, const void* v,
                              const void* out, const void* dout, const float* lse, void* scratch, void* dq, void* dk,
                              void* dv) {
  GTA_CHECK(flash_attention_supported(a), "flash attention: sizes not supported (see flash_attention_supported)");
#define GTA_FLASH_BWD(X, Y) backward_impl<X, Y>(a, scale, q, k, v, out, dout, lse, scratch, dq, dk, dv)
  GTA_FLASH_DISPATCH(a.dqk, a.dv, GTA_FLASH_BWD)
#undef GTA_FLASH_BWD
}

}  // namespace gta::kernels
