// Causal flash attention forward with wgmma (see flash_forward_wgmma.h), (d_qk, d_v) = (64, 64),
// (64, 96), (96, 64) or (64, 192). (A width of 96 is a wide and a narrow tile (wgmma.cuh). d_v =
// 96, GTA-S: O is a 64- and a 32-column product, and Q is read from shared memory instead of
// registers, so that two CTAs per SM still fit; d_qk = 96, MLA-S: S's k-steps run over both tiles
// of Q and K, Q again from shared memory; d_v = 192, GVA-S: V is three wide tiles and O three
// 64-column products, whose 96 accumulator registers allow one CTA per SM.)
//
// Tiling: one CTA per (128 queries, query head, batch), heaviest tiles first, 2 CTAs per SM; 2
// warpgroups of 128 threads, each owning 64 query rows (wgmma's M). Where query heads 2j and
// 2j + 1 share their key and value heads (pair_heads: GTA-S, MQA), a CTA takes 64 positions of
// both instead, one head per warpgroup: the same K/V tiles serve both, both warpgroups need the
// same tiles (unpaired, warpgroup 0 runs the CTA's last tile wholly masked), and the items are
// half as heavy, so the launch's tail is shorter. Q (128 x 64) is loaded once
// and each warp keeps its 16 rows as A fragments in registers; K and V tiles of 64 keys pass
// through a 4-stage cp.async ring (loads two iterations ahead). Tiles live in shared memory in the
// layout wgmma reads directly: rows of 64 bf16 = 128 bytes, 16-byte chunk c of row r stored at
// chunk c ^ (r % 8) (the 128-byte swizzle), 1024-byte aligned. Per key tile n, each warpgroup computes
//   S (64 x 64 fp32 accumulators) = Q K^T    4 wgmma m64n64k16, A = Q from registers, B = K from
//                                             shared memory (K-major: d contiguous)
//   online softmax on S in registers (the same arithmetic as flash_attention.cu's forward: max on
//   the raw scores, 2^(s scale log2e - m) on the special-function unit, O rescaled)
//   O (64 x 64 fp32) += P V                  4 wgmma m64n64k16, A = P in registers (bf16, the
//                                             accumulator layout converted by to_a_frag), B = V
//                                             from shared memory (MN-major: [key][d_v] rows)
// Software pipelining within the warpgroup: S(n+1) = Q K(n+1)^T and O += P(n) V(n) are issued
// together, and the softmax of S(n+1) runs on the special-function and FMA units while the tensor
// cores still work on P(n) V(n) (for d = 64 the exponentials take about as long as both products,
// so overlapping them is most of the speed). P(n) stays in its registers until that product is
// done; then O is rescaled by the new maximum and P(n+1) is packed into the same registers.
// wgmma's accumulator layout per warp is mma.m16n8's per 8 columns: thread lane l holds rows
// l/4 and l/4 + 8 of the warp's 16, columns 2 (l % 4) + {0, 1} of every 8.
//
// Measured on an H100 (B8, MHA 12 x 64): T 8192 forward 2.2 ms against 2.7-2.8 ms for the mma.sync
// forward of flash_attention.cu and 3.04 ms for this kernel before the pipelining, the
// warpgroup-uniform control flow (ptxas had serialized every wgmma) and the fixed-count tile loads;
// cuDNN takes 1.8 ms (bench/results/flash_wgmma_h100.md).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/cuda_context.h"
#include "kernels/flash_ptx.cuh"
#include "kernels/sm90a/flash_backward_wgmma.h"
#include "kernels/sm90a/flash_forward_wgmma.h"
#include "kernels/sm90a/wgmma.cuh"

namespace gta::kernels::sm90a {

namespace {

using namespace flash;
using namespace wgmma;
constexpr int kWarpgroups = 2;
constexpr int kThreads = 128 * kWarpgroups;
constexpr int TM = 64 * kWarpgroups;  // queries per CTA
constexpr int KN = 64;                // keys per tile
constexpr int kStages = 4;            // K/V ring: tile n in use, n+1 resident, n+2 and n+3 in flight

// Shared memory for d_qk = DQK and d_v = DV (each 64, or 96 = a wide and a narrow tile): Q (+
// narrow), then the ring of stages, each K (+ narrow), V (+ narrow); plus 1 KB to align the base
// to 1024 bytes (d_v 192: V is three wide tiles). 64 / 64: 81 KB, 64 / 96: 97 KB, 96 / 64: 105 KB,
// two CTAs per SM; 64 / 192: 145 KB, one.
template <int DQK, int DV>
struct Smem {
  static constexpr int kQ2 = TM * 128;                                // narrow Q
  static constexpr int kRing = kQ2 + (DQK == 96 ? TM * 64 : 0);
  static constexpr int kK2 = KN * 128;                                // in a stage: narrow K
  static constexpr int kV = kK2 + (DQK == 96 ? KN * 64 : 0);          // in a stage: V
  static constexpr int kV2 = kV + (DV == 192 ? 3 : 1) * KN * 128;     // in a stage: narrow V
  static constexpr int kStage = kV2 + (DV == 96 ? KN * 64 : 0);
  static constexpr size_t kBytes = kRing + kStages * kStage + 1024;
  static_assert(kStage % 1024 == 0 && kRing % 1024 == 0, "tiles stay 1024-byte aligned");
};

// One online-softmax step on the scores of the key tile at u0: keys after a row's position (pos)
// masked when the tile reaches past the warpgroup's first row (diag); the running max m (log2
// units, of s sl2) and sum l updated; s turned into P = 2^(s sl2 - m); alpha = 2^(m_old - m_new),
// the factor for O's rows. s[4 j + e]: row g + 8 (e / 2), key u0 + 8 j + 2 (lane % 4) + (e & 1).
__device__ __forceinline__ void softmax_tile(float (&s)[32], float (&m)[2], float (&l)[2], float (&alpha)[2], int u0,
                                             const int (&pos)[2], bool diag, float sl2, int lane) {
  if (diag) {
#pragma unroll
    for (int j = 0; j < KN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (u0 + j * 8 + 2 * (lane % 4) + (e & 1) > pos[e / 2]) s[4 * j + e] = -INFINITY;
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < KN / 8; ++j) mx = fmaxf(mx, fmaxf(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float mnew = fmaxf(m[h], mx * sl2);
    const float mb = mnew == -INFINITY ? 0.f : mnew;
    alpha[h] = ex2(m[h] - mb);
    m[h] = mnew;
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < KN / 8; ++j) {
      s[4 * j + 2 * h] = ex2(fmaf(s[4 * j + 2 * h], sl2, -mb));
      s[4 * j + 2 * h + 1] = ex2(fmaf(s[4 * j + 2 * h + 1], sl2, -mb));
      sum += s[4 * j + 2 * h] + s[4 * j + 2 * h + 1];
    }
    l[h] = l[h] * alpha[h] + sum;
  }
}

template <int DQK, int DV, bool kPair>
__global__ void __launch_bounds__(kThreads, DV == 192 ? 1 : 2)
    fwd_wgmma_kernel(AttnDims32 d, float sl2, const bf16* __restrict__ q, const bf16* __restrict__ k,
                     const bf16* __restrict__ v, bf16* __restrict__ out, float* __restrict__ lse) {
  using L = Smem<DQK, DV>;
  constexpr bool kNarrow = DV == 96;  // O's columns 64..95
  constexpr bool kQs = DQK == 96 || DV == 96;  // S from Q in shared memory (else registers)
  constexpr int kRows = kPair ? 64 : TM;  // query positions per CTA
  extern __shared__ unsigned char smem_raw[];
  unsigned char* base = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
  unsigned char* Qs = base;
  unsigned char* Qs2 = base + L::kQ2;
  unsigned char* ring = base + L::kRing;  // stage: K (+ narrow), V (+ narrow)
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int i0 = kPair ? 2 * blockIdx.x : blockIdx.x, b = blockIdx.y;
  const int i = i0 + (kPair ? wg : 0);                    // this warpgroup's query head
  const int t0 = (gridDim.z - 1 - blockIdx.z) * kRows;  // heaviest tiles first
  const int kh = i0 / d.gk, vh = i0 / d.gv;
  const int64_t kstride = static_cast<int64_t>(d.nk) * DQK, vstride = static_cast<int64_t>(d.nv) * DV;
  const bf16* kb = k + (static_cast<int64_t>(b) * d.S * d.nk + kh) * DQK;
  const bf16* vb = v + (static_cast<int64_t>(b) * d.S * d.nv + vh) * DV;
  const int ntiles = (min(d.S, d.off + t0 + kRows) + KN - 1) / KN;
  const int row0 = (kPair ? 0 : wg * 64) + warp * 16 + lane / 4;  // this thread's first row / position
  const int pos[2] = {d.off + t0 + row0, d.off + t0 + row0 + 8};
  // Both warpgroups run every tile of the CTA (unpaired, warpgroup 0's last one is wholly masked
  // for it), and masking is decided per CTA: wgmma issued on a path the compiler cannot prove
  // uniform over the warpgroup is serialized by ptxas (warning C7520), which costs far more.
  const int diag0 = d.off + t0;  // tiles reaching past this position are masked
  auto stage = [&](int n) { return ring + (n % kStages) * L::kStage; };
  auto load_kv = [&](int n) {
    const int u = n * KN;
    load_head_swz<KN, kThreads, DQK>(stage(n), stage(n) + L::kK2, kb + u * kstride, kstride, d.S - u);
    load_head_swz<KN, kThreads, DV>(stage(n) + L::kV, stage(n) + L::kV2, vb + u * vstride, vstride, d.S - u);
  };

  // Q: warpgroup w's 64 rows at rows 64 w of the tile (paired: head i0 + w, positions t0..t0+63)
  if constexpr (kPair) {
#pragma unroll
    for (int w = 0; w < 2; ++w)
      load_head_swz<64, kThreads, DQK>(Qs + w * 64 * 128, Qs2 + w * 64 * 64,
                                       q + ((static_cast<int64_t>(b) * d.T + t0) * d.nq + i0 + w) * DQK,
                                       static_cast<int64_t>(d.nq) * DQK, d.T - t0);
  } else {
    load_head_swz<TM, kThreads, DQK>(Qs, Qs2, q + ((static_cast<int64_t>(b) * d.T + t0) * d.nq + i) * DQK,
                                     static_cast<int64_t>(d.nq) * DQK, d.T - t0);
  }
  pipeline_prefetch(ntiles, load_kv);
  pipeline_wait_first();  // Q lands with tile 0

  constexpr int kWide = DV == 192 ? 2 : 1;  // O's further 64-column blocks (d_v 192)
  float o[32], ob[kNarrow ? 16 : 1], oc[kWide][32];  // O columns 0..63; 64..95 (d_v 96); 64..191 (192)
#pragma unroll
  for (int e = 0; e < 32; ++e) {
    o[e] = 0.f;
    if constexpr (DV == 192) oc[0][e] = oc[1][e] = 0.f;
  }
#pragma unroll
  for (int e = 0; e < (kNarrow ? 16 : 1); ++e) ob[e] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, alpha[2];  // rows g, g + 8
  float s[32] = {};  // overwritten (scale-d 0 on the first k step), but never read uninitialised
  uint32_t p[KN / 16][4];  // P(n) as wgmma's register A operand
  // S = Q K^T: for 64 / 64, Q from registers (this warp's 16 rows as A fragments); for d_v 96 those
  // registers go to O's extra columns (two CTAs per SM allow 128), for d_qk 96 there would be 24 of
  // them, and Q is read from shared memory.
  uint32_t qf[kQs ? 1 : 4][4];
  if constexpr (!kQs) load_a_frags(qf, Qs, wg * 64 + warp * 16);
  pipeline_run(
      ntiles, load_kv,
      [&](int n) {  // S = Q K^T
        if constexpr (kQs) {
          issue_k_ss<DQK>(s, Qs + wg * 64 * 128, Qs2 + wg * 64 * 64, stage(n), stage(n) + L::kK2, false);
        } else {
          issue_64x64<false>(s, qf, stage(n), false);
        }
      },
      [&](int n) {  // O += P V
        issue_64x64<true>(o, p, stage(n) + L::kV, true);
        if constexpr (kNarrow) issue_64x32_mn(ob, p, stage(n) + L::kV2);
        if constexpr (DV == 192) {
#pragma unroll
          for (int c = 0; c < 2; ++c) issue_64x64<true>(oc[c], p, stage(n) + L::kV + (c + 1) * KN * 128, true);
        }
      },
      [&](int n) {
        fence_regs(s);
        const int u0 = n * KN;
        softmax_tile(s, m, l, alpha, u0, pos, u0 + KN - 1 > diag0, sl2, lane);
      },
      [&]() {
        fence_regs(o);
        fence_regs(ob);
#pragma unroll
        for (int c = 0; c < kWide; ++c) fence_regs(oc[c]);
      },
      [&]() {
        fence_regs(p);  // P(n - 1)'s registers were wgmma's operand until here
#pragma unroll
        for (int e = 0; e < 32; ++e) o[e] *= alpha[(e / 2) % 2];
        if constexpr (kNarrow) {
#pragma unroll
          for (int e = 0; e < 16; ++e) ob[e] *= alpha[(e / 2) % 2];
        }
        if constexpr (DV == 192) {
#pragma unroll
          for (int e = 0; e < 32; ++e) {
            oc[0][e] *= alpha[(e / 2) % 2];
            oc[1][e] *= alpha[(e / 2) % 2];
          }
        }
      },
      [&]() { to_a_frag<KN>(p, reinterpret_cast<const float(&)[KN / 8][4]>(s)); });

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = l[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int t = t0 + row0 + 8 * h;
    if (t >= d.T) continue;
    const float inv = 1.f / sum;
    bf16* orow = out + ((static_cast<int64_t>(b) * d.T + t) * d.nq + i) * DV + 2 * (lane % 4);
    // columns 8 j + 2 (lane % 4): o for j < 8, then ob (j = 8 .. 11, d_v 96) or oc (j = 8 .. 23, 192)
    auto at = [&](int j, int e) {
      if (j < 8) return o[4 * j + 2 * h + e];
      if constexpr (DV == 192) return oc[(j - 8) / 8][4 * ((j - 8) % 8) + 2 * h + e];
      return ob[kNarrow ? 4 * (j - 8) + 2 * h + e : 0];
    };
#pragma unroll
    for (int j = 0; j < DV / 8; ++j)
      *reinterpret_cast<uint32_t*>(orow + j * 8) = pack_bf16(at(j, 0) * inv, at(j, 1) * inv);
    if (lane % 4 == 0) lse[(static_cast<int64_t>(b) * d.nq + i) * d.T + t] = m[h] * kLn2 + logf(sum);
  }
}

// Whether a CTA takes query heads 2j and 2j + 1 together: they share their key and value heads
// (n_q / n_k and n_q / n_v even), unless the knobs say not (GTA_FLASH_PAIR=0, for measurement). Measured
// on an H200 (GTA-S, B8): forward T 2048 0.071 -> 0.068 ms, T 8192 0.852 -> 0.827 ms. (The same
// pairing in the dQ kernel, one CTA per SM, made T 8192 fwd+bwd 1% slower: not used there.)
bool pair_heads(int gk, int gv, const Knobs& kn) { return gk % 2 == 0 && gv % 2 == 0 && kn.pair; }

template <int DQK, int DV, bool kPair>
void launch_forward(const AttnDims32& d, float scale, const void* q, const void* k, const void* v, void* out,
                    float* lse) {
  constexpr size_t kBytes = Smem<DQK, DV>::kBytes;
  cuda::set_dynamic_smem(fwd_wgmma_kernel<DQK, DV, kPair>, kBytes, "flash attention forward (wgmma)");
  const int rows = kPair ? 64 : TM;
  const dim3 grid(static_cast<unsigned>(kPair ? d.nq / 2 : d.nq), static_cast<unsigned>(d.B),
                  static_cast<unsigned>((d.T + rows - 1) / rows));
  fwd_wgmma_kernel<DQK, DV, kPair><<<grid, kThreads, kBytes, cuda::current_stream()>>>(
      d, scale * kLog2e, static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
      static_cast<bf16*>(out), lse);
  GTA_CUDA_CHECK_LAUNCH();
}

// The (d_qk, d_v) pairs the wgmma kernels are built for.
bool wgmma_widths(int64_t dqk, int64_t dv) { return (dqk == 64 && (dv == 64 || dv == 96)) || (dqk == 96 && dv == 64); }

}  // namespace

// The forward also takes d_v 192 (GVA-S): its dK/dV would need dV's 96 accumulator registers per
// thread beside everything else, so the backward runs mma.sync there.
bool flash_forward_available(const AttnDims& a, const flash::Knobs& kn) {
  return (wgmma_widths(a.dqk, a.dv) || (a.dqk == 64 && a.dv == 192)) && wgmma_enabled(kn);
}

bool backward_available(int64_t dqk, int64_t dv, const flash::Knobs& kn) {
  return wgmma_widths(dqk, dv) && wgmma_enabled(kn);
}

bool wgmma_enabled(const flash::Knobs& kn) {
  if (!kn.wgmma) return false;
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  return major == 9 && minor == 0;
}

void flash_forward(const AttnDims& a, const flash::Knobs& kn, float scale, const void* q, const void* k, const void* v,
                   void* out, float* lse) {
  const AttnDims32 d = narrow(a);
  const bool pair = pair_heads(d.gk, d.gv, kn);
  auto run = [&](auto dqk, auto dv) {
    constexpr int DQK = decltype(dqk)::value, DV = decltype(dv)::value;
    pair ? launch_forward<DQK, DV, true>(d, scale, q, k, v, out, lse)
         : launch_forward<DQK, DV, false>(d, scale, q, k, v, out, lse);
  };
  using W64 = std::integral_constant<int, 64>;
  using W96 = std::integral_constant<int, 96>;
  if (a.dqk == 96) return run(W96{}, W64{});
  if (a.dv == 96) return run(W64{}, W96{});
  if (a.dv == 192) return run(W64{}, std::integral_constant<int, 192>{});
  run(W64{}, W64{});
}

}  // namespace gta::kernels::sm90a
