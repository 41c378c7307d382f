// Part (b) of the flash attention backward (dK and dV per key tile, kernels/flash_attention.cu) on
// Hopper's warpgroup tensor-core instructions (wgmma), for d_qk = d_v = 64: the same math, units
// and outputs (bf16 dk / dv where a unit is the whole key / value group, else fp32 partials for
// the unit reduction). flash_attention_backward calls it where it applies and runs the dQ part
// on its own kernel. Compiled for sm_90a only.
#pragma once
#include <cstdint>

namespace gta::kernels::sm90a {

struct DkvProblem {
  int B, T, S, nq, nk, nv;
  int gk, gv, gu, units;  // query heads per key head / value head / unit; units = n_q / gu
  int off;                // S - T
  float scale;            // of the scores; dk = scale sum dS q
  const void *q, *k, *v, *dout;  // bf16, [B, T or S, heads, 64]
  const float *lse, *D;          // [B, n_q, T]: forward log-sum-exp (natural log), dout . out
  void *dk, *dv;                 // bf16 [B, S, n_k or n_v, 64], written where gu == gk (gv)
  float *pk, *pv;                // fp32 [B, units, S, 64] partials otherwise
};

// Whether dkv runs these widths here: d_qk = d_v = 64 and wgmma_enabled().
bool dkv_available(int64_t dqk, int64_t dv);
void dkv(const DkvProblem& p);

}  // namespace gta::kernels::sm90a
