// The causal attention primitive's problem (docs/attention.md, "One primitive underneath"):
// q [B, T, n_q, d_qk], k [B, S, n_k, d_qk], v [B, S, n_v, d_v] and out [B, T, n_q, d_v],
// contiguous; query t sits at position S - T + t; query head i reads key head i / g_k and value
// head i / g_v. One description with its derived quantities, filled in once by attn_dims, for the
// CPU reference (src/ops/attention.cpp), the reference kernels (attention_ref.cu), the mma.sync
// flash kernels (kernels/flash/) and the wgmma kernels (kernels/sm90a/), as FlashAttention's
// hopper/flash.h keeps one params struct. Plain C++, included by .cpp and .cu files alike.
#pragma once
#include <cstdint>
#include <numeric>

#ifdef __CUDACC__
#define GTA_HOST_DEVICE __host__ __device__
#else
#define GTA_HOST_DEVICE
#endif

namespace gta::kernels {

// I: int64_t on the host (AttnDims), int in the kernels (AttnDims32, fewer registers; the
// launchers check that the sizes fit before they narrow).
template <typename I>
struct AttnShape {
  I B, T, S;     // batch, queries, keys
  I nq, nk, nv;  // query, key and value heads
  I dqk, dv;     // widths of q and k, of v
  I gk, gv;      // query heads per key head, per value head
  I gu, units;   // query heads per unit (gcd(gk, gv); the flash backward may cut it), units = nq / gu
  I off;         // S - T: the position of query 0

  GTA_HOST_DEVICE I kv_of(I i) const { return i / gk; }  // the key head query head i reads
  GTA_HOST_DEVICE I v_of(I i) const { return i / gv; }   // the value head
  // Element offsets of a row of q (b, t, i), k (b, u, j), v (b, u, j), out (b, t, i), and of
  // (b, i, t) in the [B, n_q, T] log-sum-exp.
  GTA_HOST_DEVICE int64_t q_off(I b, I t, I i) const { return ((static_cast<int64_t>(b) * T + t) * nq + i) * dqk; }
  GTA_HOST_DEVICE int64_t k_off(I b, I u, I j) const { return ((static_cast<int64_t>(b) * S + u) * nk + j) * dqk; }
  GTA_HOST_DEVICE int64_t v_off(I b, I u, I j) const { return ((static_cast<int64_t>(b) * S + u) * nv + j) * dv; }
  GTA_HOST_DEVICE int64_t o_off(I b, I t, I i) const { return ((static_cast<int64_t>(b) * T + t) * nq + i) * dv; }
  GTA_HOST_DEVICE int64_t row(I b, I i, I t) const { return (static_cast<int64_t>(b) * nq + i) * T + t; }
};

using AttnDims = AttnShape<int64_t>;
using AttnDims32 = AttnShape<int>;

// The problem of those sizes, its derived quantities filled in. They stay 0 when a head count is
// 0, which every caller rejects after reading the sizes.
inline AttnDims attn_dims(int64_t B, int64_t T, int64_t S, int64_t nq, int64_t nk, int64_t nv, int64_t dqk,
                          int64_t dv) {
  AttnDims a{B, T, S, nq, nk, nv, dqk, dv, 0, 0, 0, 0, S - T};
  if (nk > 0 && nv > 0) {
    a.gk = nq / nk;
    a.gv = nq / nv;
    a.gu = std::gcd(a.gk, a.gv);
    if (a.gu > 0) a.units = nq / a.gu;
  }
  return a;
}

// The kernels' form: every field narrowed to int (the caller has checked that they fit).
inline AttnDims32 narrow(const AttnDims& a) {
  auto n = [](int64_t x) { return static_cast<int>(x); };
  return {n(a.B),  n(a.T),  n(a.S),  n(a.nq), n(a.nk),    n(a.nv), n(a.dqk),
          n(a.dv), n(a.gk), n(a.gv), n(a.gu), n(a.units), n(a.off)};
}

}  // namespace gta::kernels
