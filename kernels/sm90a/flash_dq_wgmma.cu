// dQ of causal flash attention with wgmma (see flash_backward_wgmma.h), d_qk and d_v 64 or 96.
//
// Math (kernels/flash_attention.cu has the whole derivation): for query t of head i at position p
// and keys u <= p, with P = 2^(s scale log2e - lse log2e), s = q_t . k_u and dP = dout_t . v_u,
//   dS = P (dP - D_t),   dq_t = scale sum_u dS k_u.
// Tiling: one CTA per (128 queries, query head, batch), heaviest tiles first; 2 warpgroups of 128
// threads, each owning 64 queries (wgmma's M), whose Q and dO rows stay in registers as A
// fragments (and lse, D of its two rows per thread). K and V tiles of 64 keys pass through a
// 4-stage cp.async ring, loaded two tiles ahead (swizzled, see wgmma.cuh; a width of 96 is a wide
// and a narrow tile: S's (d_qk) or dP's (d_v) k-steps run over both, and dQ (d_qk) is a 64- and a
// 32-column product). Per key tile
// n, each warpgroup computes (all m64n64k16, A from registers, B from shared memory)
//   S  = Q K^T       B = K  K-major        dP = dO V^T     B = V  K-major
//   P, dS elementwise in registers (causal mask on tiles crossing the diagonal)
//   dQ += dS K       B = K  MN-major
// pipelined as the forward: S(n+1), dP(n+1) are issued with dQ(n), and the elementwise work on
// tile n+1 runs while the tensor cores finish dQ(n); dS(n) stays in its registers until then.
// Control flow is uniform over the warpgroup (both run every tile; masking is decided per CTA).
// Rows past T are computed on zero-filled Q and dO and not stored.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "core/cuda_context.h"
#include "kernels/flash_ptx.cuh"
#include "kernels/sm90a/flash_backward_wgmma.h"
#include "kernels/sm90a/wgmma.cuh"

namespace gta::kernels::sm90a {

namespace {

using namespace flash;
using namespace wgmma;
constexpr int kThreads = 256;  // 2 warpgroups
constexpr int TM = 128;        // queries per CTA
constexpr int KN = 64;         // keys per tile
constexpr int kStages = 4;     // tile n in use, n+1 resident, n+2 and n+3 in flight

// Shared memory for d_qk = DQK and d_v = DV (each 64, or 96 = a wide and a narrow tile): Q (+
// narrow), dO (+ narrow), then the ring of stages, each K (+ narrow), V (+ narrow); plus 1 KB to
// align the base to 1024 bytes. 64 / 64: 97 KB, one width 96: 121 KB; one CTA per SM (registers).
template <int DQK, int DV>
struct Smem {
  static constexpr int kQ2 = TM * 128;                                // narrow Q
  static constexpr int kG = kQ2 + (DQK == 96 ? TM * 64 : 0);          // dO
  static constexpr int kG2 = kG + TM * 128;                           // narrow dO
  static constexpr int kRing = kG2 + (DV == 96 ? TM * 64 : 0);
  static constexpr int kK2 = KN * 128;                                // in a stage: narrow K
  static constexpr int kV = kK2 + (DQK == 96 ? KN * 64 : 0);          // in a stage: V
  static constexpr int kV2 = kV + KN * 128;                           // in a stage: narrow V
  static constexpr int kStage = kV2 + (DV == 96 ? KN * 64 : 0);
  static constexpr size_t kBytes = kRing + kStages * kStage + 1024;
  static_assert(kStage % 1024 == 0 && kRing % 1024 == 0, "tiles stay 1024-byte aligned");
};

template <int DQK, int DV>
__global__ void __launch_bounds__(kThreads, 1) dq_wgmma_kernel(BwdProblem d, float sl2) {
  using L = Smem<DQK, DV>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* base = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
  unsigned char* Qs = base;
  unsigned char* Gs = base + L::kG;
  unsigned char* ring = base + L::kRing;  // stage: K (+ narrow), V (+ narrow)
  const int i = blockIdx.x, b = blockIdx.y;
  const int t0 = (gridDim.z - 1 - blockIdx.z) * TM;  // heaviest tiles first
  const int kh = i / d.gk, vh = i / d.gv;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int64_t kstride = static_cast<int64_t>(d.nk) * DQK, vstride = static_cast<int64_t>(d.nv) * DV;
  const bf16* kb = static_cast<const bf16*>(d.k) + (static_cast<int64_t>(b) * d.S * d.nk + kh) * DQK;
  const bf16* vb = static_cast<const bf16*>(d.v) + (static_cast<int64_t>(b) * d.S * d.nv + vh) * DV;
  const int ntiles = (min(d.S, d.off + t0 + TM) + KN - 1) / KN;
  const int row0 = wg * 64 + warp * 16 + lane / 4;  // this thread's first row in the tile
  const int pos[2] = {d.off + t0 + row0, d.off + t0 + row0 + 8};
  const int diag0 = d.off + t0;  // key tiles reaching past this position are masked
  auto load_kv = [&](int n) {
    const int u = n * KN;
    unsigned char* st = ring + (n % kStages) * L::kStage;
    load_head_swz<KN, kThreads, DQK>(st, st + L::kK2, kb + u * kstride, kstride, d.S - u);
    load_head_swz<KN, kThreads, DV>(st + L::kV, st + L::kV2, vb + u * vstride, vstride, d.S - u);
  };

  const int64_t r0 = (static_cast<int64_t>(b) * d.T + t0) * d.nq + i;
  const bf16* grow = static_cast<const bf16*>(d.dout) + r0 * DV;
  load_head_swz<TM, kThreads, DQK>(Qs, base + L::kQ2, static_cast<const bf16*>(d.q) + r0 * DQK,
                                   static_cast<int64_t>(d.nq) * DQK, d.T - t0);
  load_head_swz<TM, kThreads, DV>(Gs, base + L::kG2, grow, static_cast<int64_t>(d.nq) * DV, d.T - t0);
  pipeline_prefetch(ntiles, load_kv);
  // lse (in log2 units) and D of this thread's two rows; rows past T read as 0 (they add nothing).
  float l2[2], Dr[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int t = t0 + row0 + 8 * h;
    const int64_t idx = (static_cast<int64_t>(b) * d.nq + i) * d.T + t;
    l2[h] = t < d.T ? d.lse[idx] * kLog2e : 0.f;
    Dr[h] = t < d.T ? d.D[idx] : 0.f;
  }
  pipeline_wait_first();  // Q and dO land with tile 0

  uint32_t qf[DQK / 16][4], gf[DV / 16][4];  // this warp's 16 rows of Q and dO: A fragments over d
  load_a_frags_w<DQK>(qf, Qs, base + L::kQ2, wg * 64 + warp * 16);
  load_a_frags_w<DV>(gf, Gs, base + L::kG2, wg * 64 + warp * 16);
  float acc[32], accb[DQK == 96 ? 16 : 1], s[32] = {}, dp[32] = {};  // dQ columns 0..63, 64..95
#pragma unroll
  for (int e = 0; e < 32; ++e) acc[e] = 0.f;
#pragma unroll
  for (int e = 0; e < (DQK == 96 ? 16 : 1); ++e) accb[e] = 0.f;
  uint32_t sf[4][4];  // dS of the tile whose dQ product runs

  // s[4 j + e]: row g + 8 (e / 2), key u0 + 8 j + 2 (lane % 4) + (e & 1). dS in place of dp.
  auto elementwise = [&](int n) {
    const int u0 = n * KN;
    const bool diag = u0 + KN - 1 > diag0;
#pragma unroll
    for (int j = 0; j < KN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float p = ex2(fmaf(s[4 * j + e], sl2, -l2[e / 2]));
        if (diag && u0 + j * 8 + 2 * (lane % 4) + (e & 1) > pos[e / 2]) p = 0.f;
        dp[4 * j + e] = p * (dp[4 * j + e] - Dr[e / 2]);
      }
  };
  pipeline_run(
      ntiles, load_kv,
      [&](int n) {  // S = Q K^T, dP = dO V^T
        const unsigned char* st = ring + (n % kStages) * L::kStage;
        issue_k<DQK>(s, qf, st, st + L::kK2, false);
        issue_k<DV>(dp, gf, st + L::kV, st + L::kV2, false);
      },
      [&](int n) {  // dQ += dS K
        const unsigned char* st = ring + (n % kStages) * L::kStage;
        issue_n<DQK>(acc, accb, sf, st, st + L::kK2);
      },
      [&](int n) {
        fence_regs(s);
        fence_regs(dp);
        elementwise(n);
      },
      [&]() {
        fence_regs(acc);
        fence_regs(accb);
      },
      [&]() { fence_regs(sf); },  // the operand of the previous tile's product until here
      [&]() { to_a_frag<KN>(sf, reinterpret_cast<const float(&)[KN / 8][4]>(dp)); });

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int t = t0 + row0 + 8 * h;
    if (t >= d.T) continue;
    bf16* row = static_cast<bf16*>(d.dq_ptr) + ((static_cast<int64_t>(b) * d.T + t) * d.nq + i) * DQK + 2 * (lane % 4);
    // columns 8 j + 2 (lane % 4): acc for j < 8, accb for j = 8 .. 11
    auto at = [&](int j, int e) {
      return d.scale * (j < 8 ? acc[4 * j + 2 * h + e] : accb[DQK == 96 ? 4 * (j - 8) + 2 * h + e : 0]);
    };
#pragma unroll
    for (int j = 0; j < DQK / 8; ++j) *reinterpret_cast<uint32_t*>(row + j * 8) = pack_bf16(at(j, 0), at(j, 1));
  }
}

template <int DQK, int DV>
void launch_dq(const BwdProblem& p, cudaStream_t stream) {
  using L = Smem<DQK, DV>;
  cuda::set_dynamic_smem(dq_wgmma_kernel<DQK, DV>, L::kBytes, "flash attention dQ (wgmma)");
  const dim3 grid(static_cast<unsigned>(p.nq), static_cast<unsigned>(p.B), static_cast<unsigned>((p.T + TM - 1) / TM));
  dq_wgmma_kernel<DQK, DV><<<grid, kThreads, L::kBytes, stream>>>(p, p.scale * kLog2e);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace

void dq(const BwdProblem& p, cudaStream_t stream) {
  if (p.dqk == 96) return launch_dq<96, 64>(p, stream);
  if (p.dv == 96) return launch_dq<64, 96>(p, stream);
  launch_dq<64, 64>(p, stream);
}

}  // namespace gta::kernels::sm90a
