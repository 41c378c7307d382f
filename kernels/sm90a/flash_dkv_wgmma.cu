// dK / dV of causal flash attention with wgmma (see flash_backward_wgmma.h), d_qk = d_v = 64.
//
// Math (kernels/flash_attention.cu has the whole derivation): for key u and query t of head i at
// position p >= u, with P = 2^(s scale log2e - lse log2e) and s = q_t . k_u,
//   dV_u += P dout_t,   dP = v_u . dout_t,   dS = P (dP - D_t),   dK_u += scale dS q_t.
// Tiling: one CTA per (128 keys, batch, unit), key tile 0 (the heaviest: every query sees it)
// first; 2 warpgroups of 128 threads, each owning 64 keys (wgmma's M), whose K and V rows stay in
// registers as A fragments. The CTA loops over the unit's heads and, per head, over query tiles of
// 64 from the first that sees its keys; Q, dO (128-byte-swizzled, see wgmma.cuh), lse and D of
// each tile pass through a 4-stage cp.async ring, loaded two tiles ahead. Per query tile n, each
// warpgroup computes (all m64n64k16, A from registers, B from shared memory)
//   S^T  = K Q^T         B = Q   K-major       dP^T = V dO^T    B = dO  K-major
//   P^T, dS^T elementwise in registers (causal mask on tiles crossing the diagonal)
//   dV  += P^T dO        B = dO  MN-major      dK  += dS^T Q    B = Q   MN-major
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
constexpr int kThreads = 256;          // 2 warpgroups
constexpr int TK = 128;                // keys per CTA
constexpr int BQ = 64;                 // queries per tile
constexpr int D = 64;                  // d_qk = d_v
constexpr int kStages = 4;             // tile n in use, n+1 resident, n+2 and n+3 in flight
constexpr int kKBytes = TK * D * 2;    // 16 KB
constexpr int kQBytes = BQ * D * 2;    // 8 KB
constexpr int kStageBytes = 2 * kQBytes + 1024;  // Q, dO, lse[64] and D[64] (padded to 1 KB)
// K, V, the ring, plus 1 KB to align the base to 1024 bytes: 101 KB, one CTA per SM (registers).
constexpr size_t kSmemBytes = 2 * kKBytes + kStages * kStageBytes + 1024;
static_assert(kStageBytes % 1024 == 0, "stages must keep the tiles 1024-byte aligned");

__global__ void __launch_bounds__(kThreads, 1) dkv_wgmma_kernel(BwdProblem d, float sl2) {
  extern __shared__ unsigned char smem_raw[];
  unsigned char* base = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
  unsigned char* Ks = base;
  unsigned char* Vs = base + kKBytes;
  unsigned char* ring = base + 2 * kKBytes;  // stage: Q tile, dO tile, lse[64], D[64]
  const int blk = static_cast<int>(blockIdx.x);
  const int unit = blk % d.units, b = blk / d.units % d.B, u0 = blk / d.units / d.B * TK;
  const int h0 = unit * d.gu, kh = h0 / d.gk, vh = h0 / d.gv;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const bf16* q = static_cast<const bf16*>(d.q);
  const bf16* dout = static_cast<const bf16*>(d.dout);
  const int64_t rstride = static_cast<int64_t>(d.nq) * D;  // Q and dO rows

  const int tfirst = max(0, u0 - d.off) / BQ * BQ;  // first query tile that sees a key of this CTA
  const int ntq = (d.T - tfirst + BQ - 1) / BQ;
  const int steps = d.gu * ntq;  // (head, query tile), heads outer
  int ld_head = h0, ld_t0 = tfirst;  // the step loaded next (loads run in step order)
  auto load_step = [&](int n) {
    const int valid = d.T - ld_t0;
    unsigned char* st = ring + (n % kStages) * kStageBytes;
    const int64_t r0 = (static_cast<int64_t>(b) * d.T + ld_t0) * d.nq + ld_head;
    load_tile_swz<BQ, kThreads>(st, q + r0 * D, rstride, valid);
    load_tile_swz<BQ, kThreads>(st + kQBytes, dout + r0 * D, rstride, valid);
    const int tid = threadIdx.x, j = tid % BQ;
    const int64_t row = (static_cast<int64_t>(b) * d.nq + ld_head) * d.T + ld_t0 + (j < valid ? j : 0);
    float* ld = reinterpret_cast<float*>(st + 2 * kQBytes);
    if (tid < BQ) cp_async4(ld + j, d.lse + row, j < valid);
    else if (tid < 2 * BQ) cp_async4(ld + BQ + j, d.D + row, j < valid);
    ld_t0 += BQ;
    if (ld_t0 >= d.T) {
      ld_t0 = tfirst;
      ++ld_head;
    }
  };

  load_tile_swz<TK, kThreads>(Ks, static_cast<const bf16*>(d.k) + ((static_cast<int64_t>(b) * d.S + u0) * d.nk + kh) * D,
                              static_cast<int64_t>(d.nk) * D, d.S - u0);
  load_tile_swz<TK, kThreads>(Vs, static_cast<const bf16*>(d.v) + ((static_cast<int64_t>(b) * d.S + u0) * d.nv + vh) * D,
                              static_cast<int64_t>(d.nv) * D, d.S - u0);
  load_step(0);
  cp_commit();
  for (int n = 1; n < 3; ++n) {  // always commit (empty groups past the last step): one group per step
    if (n < steps) load_step(n);
    cp_commit();
  }
  cp_wait_group<2>();  // K, V and step 0
  fence_async_smem();
  __syncthreads();

  uint32_t kf[4][4], vf[4][4];  // this warp's 16 keys of K and V: A fragments over d
  load_a_frags(kf, Ks, wg * 64 + warp * 16);
  load_a_frags(vf, Vs, wg * 64 + warp * 16);
  float dka[32], dva[32], s[32] = {}, dp[32] = {};
#pragma unroll
  for (int e = 0; e < 32; ++e) dka[e] = dva[e] = 0.f;
  uint32_t pf[4][4], sf[4][4];  // P^T and dS^T of the step whose dV, dK products run
  // s[4 j + e]: key (row) u0 + 64 wg + 16 warp + lane / 4 + 8 (e / 2), query (column) t0 + 8 j + 2 (lane % 4) + (e & 1)
  const int key[2] = {u0 + wg * 64 + warp * 16 + lane / 4, u0 + wg * 64 + warp * 16 + lane / 4 + 8};

  // P^T and dS^T of step n from S^T and dP^T in place (s -> P, dp -> dS); called in step order.
  int ew_t0 = tfirst;  // query tile of the step elementwise works on next
  auto elementwise = [&](int n) {
    const unsigned char* st = ring + (n % kStages) * kStageBytes;
    const float* Ls = reinterpret_cast<const float*>(st + 2 * kQBytes);
    const float* Ds = Ls + BQ;
    const int pos0 = d.off + ew_t0;
    ew_t0 = ew_t0 + BQ >= d.T ? tfirst : ew_t0 + BQ;
    const bool diag = u0 + TK - 1 > pos0;  // some key of the CTA after some query of the tile
#pragma unroll
    for (int j = 0; j < BQ / 8; ++j) {
      const float2 L = *reinterpret_cast<const float2*>(Ls + j * 8 + 2 * (lane % 4));
      const float2 Dv = *reinterpret_cast<const float2*>(Ds + j * 8 + 2 * (lane % 4));
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float p = ex2(fmaf(s[4 * j + e], sl2, -((e & 1) ? L.y : L.x) * kLog2e));
        if (diag && key[e / 2] > pos0 + j * 8 + 2 * (lane % 4) + (e & 1)) p = 0.f;
        s[4 * j + e] = p;
        dp[4 * j + e] = p * (dp[4 * j + e] - ((e & 1) ? Dv.y : Dv.x));
      }
    }
  };
  auto pack = [&]() {
    to_a_frag<BQ>(pf, reinterpret_cast<const float(&)[BQ / 8][4]>(s));
    to_a_frag<BQ>(sf, reinterpret_cast<const float(&)[BQ / 8][4]>(dp));
  };
  auto issue_scores = [&](int n) {  // S^T, dP^T of step n
    const unsigned char* st = ring + (n % kStages) * kStageBytes;
    issue_64x64<false>(s, kf, st, false);
    issue_64x64<false>(dp, vf, st + kQBytes, false);
  };
  auto issue_grads = [&](int n) {  // dV += P^T dO, dK += dS^T Q of step n
    const unsigned char* st = ring + (n % kStages) * kStageBytes;
    issue_64x64<true>(dva, pf, st + kQBytes, true);
    issue_64x64<true>(dka, sf, st, true);
  };

  wgmma_fence();
  issue_scores(0);
  wgmma_commit();
  wgmma_wait<0>();
  fence_regs(s);
  fence_regs(dp);
  elementwise(0);
  pack();

  for (int n = 0; n + 1 < steps; ++n) {
    cp_wait_group<1>();  // steps up to n + 1
    fence_async_smem();
    __syncthreads();  // step n + 1 resident; every warpgroup done with step n - 1's stage
    if (n + 3 < steps) load_step(n + 3);
    cp_commit();
    fence_regs(dka);
    fence_regs(dva);
    wgmma_fence();
    issue_scores(n + 1);
    wgmma_commit();
    issue_grads(n);
    wgmma_commit();
    wgmma_wait<1>();  // S^T, dP^T of step n + 1; step n's dV, dK may still run
    fence_regs(s);
    fence_regs(dp);
    elementwise(n + 1);
    wgmma_wait<0>();
    fence_regs(dka);
    fence_regs(dva);
    fence_regs(pf);  // operands of step n's products until here
    fence_regs(sf);
    pack();
  }
  fence_regs(dka);
  fence_regs(dva);
  wgmma_fence();
  issue_grads(steps - 1);
  wgmma_commit();
  wgmma_wait<0>();
  fence_regs(dka);
  fence_regs(dva);

  // write back: bf16 when this unit is the whole key (value) group, else fp32 partials
  const int c = 2 * (lane % 4);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int u = key[h];
    if (u >= d.S) continue;
    if (d.gu == d.gk) {
      bf16* row = static_cast<bf16*>(d.dk) + ((static_cast<int64_t>(b) * d.S + u) * d.nk + kh) * D + c;
#pragma unroll
      for (int j = 0; j < D / 8; ++j)
        *reinterpret_cast<uint32_t*>(row + j * 8) = pack_bf16(dka[4 * j + 2 * h] * d.scale, dka[4 * j + 2 * h + 1] * d.scale);
    } else {
      float* row = d.pk + ((static_cast<int64_t>(b) * d.units + unit) * d.S + u) * D + c;
#pragma unroll
      for (int j = 0; j < D / 8; ++j)
        *reinterpret_cast<float2*>(row + j * 8) = make_float2(dka[4 * j + 2 * h] * d.scale, dka[4 * j + 2 * h + 1] * d.scale);
    }
    if (d.gu == d.gv) {
      bf16* row = static_cast<bf16*>(d.dv) + ((static_cast<int64_t>(b) * d.S + u) * d.nv + vh) * D + c;
#pragma unroll
      for (int j = 0; j < D / 8; ++j)
        *reinterpret_cast<uint32_t*>(row + j * 8) = pack_bf16(dva[4 * j + 2 * h], dva[4 * j + 2 * h + 1]);
    } else {
      float* row = d.pv + ((static_cast<int64_t>(b) * d.units + unit) * d.S + u) * D + c;
#pragma unroll
      for (int j = 0; j < D / 8; ++j)
        *reinterpret_cast<float2*>(row + j * 8) = make_float2(dva[4 * j + 2 * h], dva[4 * j + 2 * h + 1]);
    }
  }
}

}  // namespace

void dkv(const BwdProblem& p) {
  cuda::set_dynamic_smem(dkv_wgmma_kernel, kSmemBytes, "flash attention dK/dV (wgmma)");
  const int64_t blocks = static_cast<int64_t>(p.units) * p.B * ((p.S + TK - 1) / TK);
  dkv_wgmma_kernel<<<static_cast<unsigned>(blocks), kThreads, kSmemBytes, cuda::current_stream()>>>(p, p.scale * kLog2e);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace gta::kernels::sm90a
