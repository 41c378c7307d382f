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
// without spills at 2 CTAs per SM (see kFwd2, kDq2, kDkv2 in flash/tiling.h; measured on the H100 in
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
//
// Files: this one holds the entry points (flash_attention.h) and the dispatch over (d_qk, d_v);
// kernels/flash/ the rest: mma.cuh (mma.sync helpers), forward.cuh, dkv.cuh (b), dq.cuh (c),
// backward.cuh and backward.cu (a, the partials' sum, the backward's launch), tiling.h/.cu (tile
// shapes, the dK/dV plan, the scratch layout), knobs.h/.cu (the environment knobs, read in one
// place), launch.h and one instantiate_<d_qk>_<d_v>.cu per width pair.
#include <cstdint>

#include "core/error.h"
#include "kernels/flash/launch.h"
#include "kernels/flash_attention.h"
#include "kernels/sm90a/flash_forward_wgmma.h"

namespace gta::kernels {

namespace {

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
  using flash::BM, flash::BN;
  if (a.B > 65535 || a.nq > kInt || (a.T + BM - 1) / BM > 65535 || (a.S + BN - 1) / BN > 65535) return false;
  if (a.S + BN > kInt || a.B * a.T * a.nq * 32 > (1ll << 62)) return false;
  if (a.B * a.nq * ((a.S + BN - 1) / BN + (a.T + BM - 1) / BM) > kInt) return false;  // backward's 1-D grid
  return true;
}

void flash_attention_forward(const AttnDims& a, float scale, const void* q, const void* k, const void* v, void* out,
                             float* lse) {
  GTA_CHECK(flash_attention_supported(a), "flash attention: sizes not supported (see flash_attention_supported)");
  const flash::Knobs kn = flash::read_knobs();
  if (sm90a::flash_forward_available(a, kn)) return sm90a::flash_forward(a, kn, scale, q, k, v, out, lse);
  const AttnDims32 d = narrow(a);
#define GTA_FLASH_FWD(X, Y) flash::forward_impl<X, Y>(d, kn, scale, q, k, v, out, lse)
  GTA_FLASH_DISPATCH(a.dqk, a.dv, GTA_FLASH_FWD)
#undef GTA_FLASH_FWD
}

size_t flash_attention_backward_scratch_bytes(const AttnDims& a) {
  return flash::scratch_layout(a, flash::bwd_dims(a, flash::dkv_plan(a, flash::read_knobs()))).total();
}

void flash_attention_backward(const AttnDims& a, float scale, const void* q, const void* k, const void* v,
                              const void* out, const void* dout, const float* lse, void* scratch, void* dq, void* dk,
                              void* dv) {
  GTA_CHECK(flash_attention_supported(a), "flash attention: sizes not supported (see flash_attention_supported)");
  const flash::Knobs kn = flash::read_knobs();
#define GTA_FLASH_BWD(X, Y) flash::backward_impl<X, Y>(a, kn, scale, q, k, v, out, dout, lse, scratch, dq, dk, dv)
  GTA_FLASH_DISPATCH(a.dqk, a.dv, GTA_FLASH_BWD)
#undef GTA_FLASH_BWD
}

}  // namespace gta::kernels
