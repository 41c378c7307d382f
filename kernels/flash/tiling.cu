#include "kernels/flash/tiling.h"

#include <algorithm>

#include "core/cuda_context.h"
#include "kernels/sm90a/flash_backward_wgmma.h"

namespace gta::kernels::flash {

bool use_fwd2(int64_t dqk, int64_t dv, const Knobs& k) { return dqk + dv <= 160 && dqk <= 96 && k.fwd_mr == 2; }
bool use_dq2(int64_t dqk, int64_t dv, const Knobs& k) { return dqk == 64 && dv <= 96 && k.dq_mr == 2; }
bool use_dkv2(int64_t dqk, int64_t dv, const Knobs& k) { return dqk + dv <= 128 && k.dkv_mr == 2; }

DkvPlan dkv_plan(const AttnDims& a, const Knobs& k) {
  const int gu = static_cast<int>(a.gu);
  const bool wg = sm90a::backward_available(a.dqk, a.dv, k);
  const int force_heads = k.dkv_heads;
  auto heads_ok = [&](int s) { return wg && (gu / s) % 2 == 0 && force_heads != 0; };
  if (const int s = k.split; s > 0) {
    const int split = gu % s == 0 ? s : 1;
    return {split, heads_ok(split) && force_heads == 1};
  }
  const double T = static_cast<double>(a.T), S = static_cast<double>(a.S);
  const double slots = (wg ? 1.0 : 2.0) * cuda::sm_count();
  const double avg = 2.0 * a.B * a.nq * (T * S - T * T / 2) / slots;
  const double keys = wg ? sm90a::dkv_tile_keys(false) : (use_dkv2(a.dqk, a.dv, k) ? 128 : 64);
  for (int s = 1; s < gu; ++s) {
    if (gu % s != 0) continue;
    if (force_heads != 1 && (gu / s) * T * keys <= avg) return {s, false};
    if (heads_ok(s) && (gu / s) * T * sm90a::dkv_tile_keys(true) <= avg) return {s, true};
  }
  return {gu, false};
}

AttnDims32 bwd_dims(const AttnDims& a, const DkvPlan& plan) {
  AttnDims32 d = narrow(a);
  d.gu /= plan.split;
  d.units = d.nq / d.gu;
  return d;
}

namespace {

size_t round256(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace

ScratchLayout scratch_layout(const AttnDims& a, const AttnDims32& d) {
  ScratchLayout s;
  s.d_bytes = round256(sizeof(float) * std::max<int64_t>(1, a.B * a.nq * a.T));
  if (d.gu != d.gk) s.pk_bytes = round256(sizeof(float) * a.B * d.units * a.S * a.dqk);
  if (d.gu != d.gv) s.pv_bytes = round256(sizeof(float) * a.B * d.units * a.S * a.dv);
  return s;
}

}  // namespace gta::kernels::flash
