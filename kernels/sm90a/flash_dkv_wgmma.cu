// dK / dV of causal flash attention with wgmma (see flash_backward_wgmma.h), d_qk and d_v 64 or 96.
//
// Math (kernels/flash_attention.cu has the whole derivation): for key u and query t of head i at
// position p >= u, with P = 2^(s scale log2e - lse log2e) and s = q_t . k_u,
//   dV_u += P dout_t,   dP = v_u . dout_t,   dS = P (dP - D_t),   dK_u += scale dS q_t.
// Tiling: one CTA per (key tile, batch, unit), key tile 0 (the heaviest: every query sees it)
// first; 2 warpgroups of 128 threads, split one of two ways:
//   by keys (a unit of an odd number of heads, e.g. MHA, GQA-S): 128 keys per CTA, each warpgroup
//     owning 64 of them (wgmma's M) and every head of the unit;
//   by heads (an even number, e.g. GTA-S's 4 query heads on one key and value head): 64 keys per
//     CTA, both warpgroups owning them, each half the unit's heads; at the end warpgroup 1 hands
//     its dK, dV to warpgroup 0 through shared memory, which adds them (in that order, so the
//     result is still fixed) and writes. Half the keys per CTA for the same work lets a CTA take a
//     whole key/value group (dk, dv written in bf16 directly, no fp32 partials and no reduction
//     kernel) where 128 keys of every head made the heaviest CTAs the tail of the launch.
// The warpgroup's K and V rows stay in registers as A fragments. The CTA loops over its heads
// (pairs of heads when split by heads) and, per head, over query tiles of 64 from the first that
// sees its keys; Q, dO (swizzled, see wgmma.cuh; a width of 96 is a wide and a narrow tile), lse
// and D of each tile (of each warpgroup's head, when split by heads) pass through a 4-stage
// cp.async ring, loaded two tiles ahead. Per step n, each
// warpgroup computes (all m64n64k16, A from registers, B from shared memory)
//   S^T  = K Q^T         B = Q   K-major       dP^T = V dO^T    B = dO  K-major
//   P^T, dS^T elementwise in registers (causal mask on tiles crossing the diagonal)
//   dV  += P^T dO        B = dO  MN-major      dK  += dS^T Q    B = Q   MN-major
// (a width of 96: the k-steps of S^T (d_qk) or dP^T (d_v) run over both tiles, and dK or dV is a
// 64- and a 32-column product).
// pipelined as in the forward: S^T(n+1), dP^T(n+1) are issued with dV(n), dK(n), and the
// elementwise work on tile n+1 runs while the tensor cores finish tile n's products; P^T(n) and
// dS^T(n) stay in their registers until then. Control flow is uniform over the warpgroup (every
// warpgroup runs every tile; masking is decided per CTA), else ptxas serializes the wgmma.
// Rows past T (zero-filled Q, dO, lse, D) give P = 1 but dO = D = 0, so they add nothing; keys
// past S are zero and not stored. No atomics: the results are bit-identical run to run.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "core/cuda_context.h"
#include "kernels/flash_ptx.cuh"
#include "kernels/sm90a/flash_backward_wgmma.h"
#include "kernels/sm90a/flash_forward_wgmma.h"
#include "kernels/sm90a/wgmma.cuh"

namespace gta::kernels::sm90a {

namespace {

using namespace flash;
using namespace wgmma;
constexpr int kThreads = 256;           // 2 warpgroups
constexpr int BQ = 64;                  // queries per tile
constexpr int kStages = 4;              // tile n in use, n+1 resident, n+2 and n+3 in flight
constexpr int kWideQ = BQ * 128;        // a wide tile of a query tile: 8 KB

// Keys per CTA: split by keys (kHeads false) 2 x 64, by heads 64.
constexpr int keys_per_cta(bool heads) { return heads ? 64 : 128; }

// Shared memory for d_qk = DQK and d_v = DV (each 64, or 96 = a wide and a narrow tile): K (+
// narrow), V (+ narrow) of the CTA's keys, then the ring of stages, each one slot per head in
// flight (2 when split by heads): Q (+ narrow), dO (+ narrow), lse[64] and D[64] (padded to 1 KB);
// plus 1 KB to align the base to 1024 bytes. By keys: 101 KB (64/64), 125 KB (one width 96); by
// heads: 149 KB, 189 KB; one CTA per SM (registers).
template <int DQK, int DV, bool kHeads>
struct Smem {
  static constexpr int TK = keys_per_cta(kHeads);
  static constexpr int kWideK = TK * 128;                         // a wide tile of the CTA's keys
  static constexpr int kK2 = kWideK;                              // narrow K tile (DQK 96)
  static constexpr int kV = kK2 + (DQK == 96 ? TK * 64 : 0);
  static constexpr int kV2 = kV + kWideK;                         // narrow V tile (DV 96)
  static constexpr int kRing = kV2 + (DV == 96 ? TK * 64 : 0);
  static constexpr int kQ2 = kWideQ;                              // in a slot: narrow Q tile
  static constexpr int kG = kQ2 + (DQK == 96 ? BQ * 64 : 0);      // in a slot: dO
  static constexpr int kG2 = kG + kWideQ;                         // in a slot: narrow dO tile
  static constexpr int kLD = kG2 + (DV == 96 ? BQ * 64 : 0);      // in a slot: lse, D
  static constexpr int kSlot = kLD + 1024;
  static constexpr int kStage = (kHeads ? 2 : 1) * kSlot;
  static constexpr size_t kBytes = kRing + kStages * kStage + 1024;
  static_assert(kSlot % 1024 == 0 && kRing % 1024 == 0, "tiles stay 1024-byte aligned");
};

template <int DQK, int DV, bool kHeads>
__global__ void __launch_bounds__(kThreads, 1) dkv_wgmma_kernel(BwdProblem d, float sl2) {
  using L = Smem<DQK, DV, kHeads>;
  constexpr int TK = L::TK, kSlots = kHeads ? 2 : 1;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* base = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
  unsigned char* Ks = base;
  unsigned char* Ks2 = base + L::kK2;
  unsigned char* Vs = base + L::kV;
  unsigned char* Vs2 = base + L::kV2;
  unsigned char* ring = base + L::kRing;
  const int blk = static_cast<int>(blockIdx.x);
  const int unit = blk % d.units, b = blk / d.units % d.B, u0 = blk / d.units / d.B * TK;
  const int h0 = unit * d.gu, kh = h0 / d.gk, vh = h0 / d.gv;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int krow = (kHeads ? 0 : wg * 64) + warp * 16;  // this warp's first key row in the CTA's tile
  const int slot = kHeads ? wg * L::kSlot : 0;          // this warpgroup's slot in a stage
  const bf16* q = static_cast<const bf16*>(d.q);
  const bf16* dout = static_cast<const bf16*>(d.dout);
  const int64_t qstride = static_cast<int64_t>(d.nq) * DQK, gstride = static_cast<int64_t>(d.nq) * DV;

  const int tfirst = max(0, u0 - d.off) / BQ * BQ;  // first query tile that sees a key of this CTA
  const int ntq = (d.T - tfirst + BQ - 1) / BQ;
  const int hpw = d.gu / kSlots;  // heads per warpgroup: slot w holds head h0 + w hpw + (step's head)
  const int steps = hpw * ntq;    // (head, query tile), heads outer
  int ld_head = h0, ld_t0 = tfirst;  // the step loaded next (loads run in step order)
  auto load_step = [&](int n) {
    const int valid = d.T - ld_t0;
    unsigned char* st = ring + (n % kStages) * L::kStage;
#pragma unroll
    for (int w = 0; w < kSlots; ++w) {
      const int64_t r0 = (static_cast<int64_t>(b) * d.T + ld_t0) * d.nq + ld_head + w * hpw;
      unsigned char* sl = st + w * L::kSlot;
      load_head_swz<BQ, kThreads, DQK>(sl, sl + L::kQ2, q + r0 * DQK, qstride, valid);
      load_head_swz<BQ, kThreads, DV>(sl + L::kG, sl + L::kG2, dout + r0 * DV, gstride, valid);
    }
    // lse and D: thread tid loads entry j of array tid / BQ (slot w, lse or D)
    const int tid = threadIdx.x, j = tid % BQ, a = tid / BQ, w = a / 2;
    if (a < 2 * kSlots) {
      const int64_t row = (static_cast<int64_t>(b) * d.nq + ld_head + w * hpw) * d.T + ld_t0 + (j < valid ? j : 0);
      float* ld = reinterpret_cast<float*>(st + w * L::kSlot + L::kLD);
      cp_async4(ld + (a % 2) * BQ + j, (a % 2 ? d.D : d.lse) + row, j < valid);
    }
    ld_t0 += BQ;
    if (ld_t0 >= d.T) {
      ld_t0 = tfirst;
      ++ld_head;
    }
  };

  const int64_t kstride = static_cast<int64_t>(d.nk) * DQK, vstride = static_cast<int64_t>(d.nv) * DV;
  const bf16* krow0 = static_cast<const bf16*>(d.k) + ((static_cast<int64_t>(b) * d.S + u0) * d.nk + kh) * DQK;
  const bf16* vrow0 = static_cast<const bf16*>(d.v) + ((static_cast<int64_t>(b) * d.S + u0) * d.nv + vh) * DV;
  load_head_swz<TK, kThreads, DQK>(Ks, Ks2, krow0, kstride, d.S - u0);
  load_head_swz<TK, kThreads, DV>(Vs, Vs2, vrow0, vstride, d.S - u0);
  pipeline_prefetch(steps, load_step);
  pipeline_wait_first();  // K and V land with step 0

  uint32_t kf[DQK / 16][4], vf[DV / 16][4];  // this warp's 16 keys of K and V: A fragments over d
  load_a_frags_w<DQK>(kf, Ks, Ks2, krow);
  load_a_frags_w<DV>(vf, Vs, Vs2, krow);
  // dK and dV columns 0..63, and 64..95 of a width of 96 (dkb, dvb)
  float dka[32], dkb[DQK == 96 ? 16 : 1], dva[32], dvb[DV == 96 ? 16 : 1], s[32] = {}, dp[32] = {};
#pragma unroll
  for (int e = 0; e < 32; ++e) dka[e] = dva[e] = 0.f;
#pragma unroll
  for (int e = 0; e < 16; ++e) {
    if constexpr (DQK == 96) dkb[e] = 0.f;
    if constexpr (DV == 96) dvb[e] = 0.f;
  }
  uint32_t pf[4][4], sf[4][4];  // P^T and dS^T of the step whose dV, dK products run
  // s[4 j + e]: key (row) u0 + krow + lane / 4 + 8 (e / 2), query (column) t0 + 8 j + 2 (lane % 4) + (e & 1)
  const int key[2] = {u0 + krow + lane / 4, u0 + krow + lane / 4 + 8};

  // P^T and dS^T of step n from S^T and dP^T in place (s -> P, dp -> dS); called in step order.
  int ew_t0 = tfirst;  // query tile of the step elementwise works on next
  auto elementwise = [&](int n) {
    const float* Ls = reinterpret_cast<const float*>(ring + (n % kStages) * L::kStage + slot + L::kLD);
    const float* Ds = Ls + BQ;
    const int pos0 = d.off + ew_t0;
    ew_t0 = ew_t0 + BQ >= d.T ? tfirst : ew_t0 + BQ;
    const bool diag = u0 + TK - 1 > pos0;  // some key of the CTA after some query of the tile
#pragma unroll
    for (int j = 0; j < BQ / 8; ++j) {
      const float2 Lv = *reinterpret_cast<const float2*>(Ls + j * 8 + 2 * (lane % 4));
      const float2 Dv = *reinterpret_cast<const float2*>(Ds + j * 8 + 2 * (lane % 4));
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float p = ex2(fmaf(s[4 * j + e], sl2, -((e & 1) ? Lv.y : Lv.x) * kLog2e));
        if (diag && key[e / 2] > pos0 + j * 8 + 2 * (lane % 4) + (e & 1)) p = 0.f;
        s[4 * j + e] = p;
        dp[4 * j + e] = p * (dp[4 * j + e] - ((e & 1) ? Dv.y : Dv.x));
      }
    }
  };
  pipeline_run(
      steps, load_step,
      [&](int n) {  // S^T = K Q^T, dP^T = V dO^T
        const unsigned char* st = ring + (n % kStages) * L::kStage + slot;
        issue_k<DQK>(s, kf, st, st + L::kQ2, false);
        issue_k<DV>(dp, vf, st + L::kG, st + L::kG2, false);
      },
      [&](int n) {  // dV += P^T dO, dK += dS^T Q
        const unsigned char* st = ring + (n % kStages) * L::kStage + slot;
        issue_n<DV>(dva, dvb, pf, st + L::kG, st + L::kG2);
        issue_n<DQK>(dka, dkb, sf, st, st + L::kQ2);
      },
      [&](int n) {
        fence_regs(s);
        fence_regs(dp);
        elementwise(n);
      },
      [&]() {
        fence_regs(dka);
        fence_regs(dkb);
        fence_regs(dva);
        fence_regs(dvb);
      },
      [&]() {
        fence_regs(pf);  // operands of the previous step's products until here
        fence_regs(sf);
      },
      [&]() {
        to_a_frag<BQ>(pf, reinterpret_cast<const float(&)[BQ / 8][4]>(s));
        to_a_frag<BQ>(sf, reinterpret_cast<const float(&)[BQ / 8][4]>(dp));
      });

  if constexpr (kHeads) {  // warpgroup 1's dK, dV to warpgroup 0, added after its own
    // red[value][thread]: dka, dkb, dva, dvb in turn (at most 32 + 16 + 32 + 16 values: 56 KB of the ring)
    constexpr int kB = DQK == 96 ? 16 : 0, kVb = DV == 96 ? 16 : 0;
    float* red = reinterpret_cast<float*>(ring);
    float* rk = red;
    float* rkb = rk + 32 * 128;
    float* rv = rkb + kB * 128;
    float* rvb = rv + 32 * 128;
    const int t = threadIdx.x % 128;
    __syncthreads();  // every warpgroup done with the ring
    if (wg == 1) {
#pragma unroll
      for (int e = 0; e < 32; ++e) {
        rk[e * 128 + t] = dka[e];
        rv[e * 128 + t] = dva[e];
      }
#pragma unroll
      for (int e = 0; e < 16; ++e) {
        if constexpr (kB) rkb[e * 128 + t] = dkb[e];
        if constexpr (kVb) rvb[e * 128 + t] = dvb[e];
      }
    }
    __syncthreads();
    if (wg == 1) return;
#pragma unroll
    for (int e = 0; e < 32; ++e) {
      dka[e] += rk[e * 128 + t];
      dva[e] += rv[e * 128 + t];
    }
#pragma unroll
    for (int e = 0; e < 16; ++e) {
      if constexpr (kB) dkb[e] += rkb[e * 128 + t];
      if constexpr (kVb) dvb[e] += rvb[e * 128 + t];
    }
  }

  // write back: bf16 when this unit is the whole key (value) group, else fp32 partials. Columns
  // 8 j + c: from the 64-column accumulator for j < 8, from the 32-column one for j = 8 .. 11.
  const int c = 2 * (lane % 4);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int u = key[h];
    if (u >= d.S) continue;
    auto dk_at = [&](int j, int e) {
      return d.scale * (j < 8 ? dka[4 * j + 2 * h + e] : dkb[DQK == 96 ? 4 * (j - 8) + 2 * h + e : 0]);
    };
    auto dv_at = [&](int j, int e) {
      return j < 8 ? dva[4 * j + 2 * h + e] : dvb[DV == 96 ? 4 * (j - 8) + 2 * h + e : 0];
    };
    if (d.gu == d.gk) {
      bf16* row = static_cast<bf16*>(d.dk_ptr) + ((static_cast<int64_t>(b) * d.S + u) * d.nk + kh) * DQK + c;
#pragma unroll
      for (int j = 0; j < DQK / 8; ++j) *reinterpret_cast<uint32_t*>(row + j * 8) = pack_bf16(dk_at(j, 0), dk_at(j, 1));
    } else {
      float* row = d.pk + ((static_cast<int64_t>(b) * d.units + unit) * d.S + u) * DQK + c;
#pragma unroll
      for (int j = 0; j < DQK / 8; ++j) *reinterpret_cast<float2*>(row + j * 8) = make_float2(dk_at(j, 0), dk_at(j, 1));
    }
    if (d.gu == d.gv) {
      bf16* row = static_cast<bf16*>(d.dv_ptr) + ((static_cast<int64_t>(b) * d.S + u) * d.nv + vh) * DV + c;
#pragma unroll
      for (int j = 0; j < DV / 8; ++j) *reinterpret_cast<uint32_t*>(row + j * 8) = pack_bf16(dv_at(j, 0), dv_at(j, 1));
    } else {
      float* row = d.pv + ((static_cast<int64_t>(b) * d.units + unit) * d.S + u) * DV + c;
#pragma unroll
      for (int j = 0; j < DV / 8; ++j) *reinterpret_cast<float2*>(row + j * 8) = make_float2(dv_at(j, 0), dv_at(j, 1));
    }
  }
}

template <int DQK, int DV, bool kHeads>
void launch_dkv(const BwdProblem& p, cudaStream_t stream) {
  using L = Smem<DQK, DV, kHeads>;
  cuda::set_dynamic_smem(dkv_wgmma_kernel<DQK, DV, kHeads>, L::kBytes, "flash attention dK/dV (wgmma)");
  const int64_t blocks = static_cast<int64_t>(p.units) * p.B * ((p.S + L::TK - 1) / L::TK);
  dkv_wgmma_kernel<DQK, DV, kHeads><<<static_cast<unsigned>(blocks), kThreads, L::kBytes, stream>>>(
      p, p.scale * kLog2e);
  GTA_CUDA_CHECK_LAUNCH();
}

template <int DQK, int DV>
void launch_dkv(const BwdProblem& p, cudaStream_t stream) {
  p.dkv_heads ? launch_dkv<DQK, DV, true>(p, stream) : launch_dkv<DQK, DV, false>(p, stream);
}

}  // namespace

int dkv_tile_keys(bool heads) { return keys_per_cta(heads); }

void dkv(const BwdProblem& p, cudaStream_t stream) {
  GTA_CHECK(!p.dkv_heads || p.gu % 2 == 0, "flash attention dK/dV (wgmma): split by heads needs an even unit");
  if (p.dqk == 96) return launch_dkv<96, 64>(p, stream);
  if (p.dv == 96) return launch_dkv<64, 96>(p, stream);
  launch_dkv<64, 64>(p, stream);
}

}  // namespace gta::kernels::sm90a
