// The flash attention backward (kernels/flash_attention.cu, parts (b) dK/dV and (c) dQ) on
// Hopper's warpgroup tensor-core instructions (wgmma), for (d_qk, d_v) = (64, 64), (64, 96) and
// (96, 64) (MHA, GQA, MQA, GTA-S and MLA-S shapes): the same math, units and outputs (dk / dv in
// bf16 where a unit is the whole key / value group, else fp32 partials for the unit reduction; dq
// in bf16).
// flash_attention_backward runs both where they apply, after D, on two streams: they are
// independent, and dq's CTAs fill the multiprocessors that dkv's last, lighter CTAs leave idle.
// Compiled for sm_90a only.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/attention_problem.h"
#include "kernels/flash/knobs.h"

namespace gta::kernels::sm90a {

// The backward's problem (flash::bwd_dims: the units the plan cut; d_qk, d_v 64 / 64, 64 / 96 or
// 96 / 64) and its operands. The gradients are dq_ptr, dk_ptr, dv_ptr: dv is the value width.
struct BwdProblem : AttnDims32 {
  bool dkv_heads;                // dkv: a CTA of dkv_tile_keys(true) keys splits its heads over its warpgroups
  float scale;                   // of the scores; dq = scale sum dS k, dk = scale sum dS q
  const void *q, *k, *v, *dout;  // bf16, [B, T or S, heads, d]
  const float *lse, *D;          // [B, n_q, T]: forward log-sum-exp (natural log), dout . out
  void* dq_ptr;                  // bf16 [B, T, n_q, d_qk]
  void *dk_ptr, *dv_ptr;         // bf16 [B, S, n_k or n_v, d], written where gu == gk (gv)
  float *pk, *pv;                // fp32 [B, units, S, d] partials otherwise
};

// Whether dkv and dq run these widths here: (d_qk, d_v) as above, and wgmma_enabled().
bool backward_available(int64_t dqk, int64_t dv, const flash::Knobs& kn);
void dkv(const BwdProblem& p, cudaStream_t stream);  // dk, dv (or pk, pv)
// Keys per dK/dV CTA: 64 when the CTA splits its heads over its warpgroups (an even number of heads
// per unit; see flash_dkv_wgmma.cu), else 128.
int dkv_tile_keys(bool heads);
void dq(const BwdProblem& p, cudaStream_t stream);   // dq

}  // namespace gta::kernels::sm90a
