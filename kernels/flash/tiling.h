// The tiling policy of the mma.sync flash kernels (kernels/flash/): which tile shapes each
// (d_qk, d_v) pair uses, how the dK/dV CTAs cut a unit
// of query heads, and the backward's scratch layout. Plain C++ (host code, no CUDA types).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/attention_problem.h"
#include "kernels/flash/knobs.h"

namespace gta::kernels::flash {

constexpr int BM = 64;  // queries per forward / dq CTA at MR = 1 (16 per warp)
constexpr int BN = 64;  // keys per dk/dv CTA at MR = 1 (16 per warp)

// Tilings, picked per (d_qk, d_v) where the registers allow (255 per thread, 2 CTAs per SM; no
// spills but 8 bytes in the 64/64 dK/dV part): MR = 2 row blocks of 16 per warp (128-row tiles)
// let every B fragment read from shared memory feed two mma row blocks. Measured on the H100 (B8,
// T 2048 / 8192, fwd+bwd): the 128-row forward 6-10% faster, 128-key dK/dV 3% faster for MHA; for
// d_qk + d_v = 160 the 128-key dK/dV needs BQ = 16 and was 8% slower (GTA), so it stays at 64.
// The knobs GTA_FLASH_FWD_MR, GTA_FLASH_DQ_MR, GTA_FLASH_DKV_MR (1 everywhere = the 64-row tiling
// of 9c04cc5) turn MR = 2 off, for measurement.
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
bool use_fwd2(int64_t dqk, int64_t dv, const Knobs& k);
bool use_dq2(int64_t dqk, int64_t dv, const Knobs& k);
bool use_dkv2(int64_t dqk, int64_t dv, const Knobs& k);

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
// 64, two per SM. The knobs GTA_FLASH_SPLIT (forces s) and GTA_FLASH_DKV_HEADS=0 / 1 (the wgmma
// CTA shape) override it, for measurement.
struct DkvPlan {
  int split;
  bool heads;  // wgmma: split the CTA's heads over its warpgroups
};
DkvPlan dkv_plan(const AttnDims& a, const Knobs& k);

// The problem as the backward's kernels read it: units of gu / plan.split query heads.
AttnDims32 bwd_dims(const AttnDims& a, const DkvPlan& plan);

// Scratch layout: D [B*nq*T] f32, then (when needed) dk partials [B][units][S][dqk] f32, then dv
// partials [B][units][S][dv] f32; each part rounded up to 256 bytes.
struct ScratchLayout {
  size_t d_bytes = 0, pk_bytes = 0, pv_bytes = 0;
  size_t total() const { return d_bytes + pk_bytes + pv_bytes; }
};
// d: the backward's problem (bwd_dims), whose units decide the partials.
ScratchLayout scratch_layout(const AttnDims& a, const AttnDims32& d);

}  // namespace gta::kernels::flash
