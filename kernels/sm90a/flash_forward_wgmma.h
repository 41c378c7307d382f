// The causal flash attention forward on Hopper's warpgroup tensor-core instructions (wgmma), for
// (d_qk, d_v) = (64, 64), (64, 96), (96, 64) and (64, 192) (MHA, GQA, MQA, GTA-S, MLA-S and GVA-S
// shapes): the same problem, layouts and results (out, lse) as kernels::flash_attention_forward,
// which calls it where it applies.
// Compiled for sm_90a only.
#pragma once
#include "kernels/attention_problem.h"
#include "kernels/flash/knobs.h"

namespace gta::kernels::sm90a {

// Whether the wgmma kernels may run: the current device has compute capability 9.0 and the
// knobs do not turn them off (GTA_FLASH_WGMMA=0, for measurement: the mma.sync kernels then run).
bool wgmma_enabled(const flash::Knobs& kn);
// Whether flash_forward runs these sizes here: (d_qk, d_v) as above, and wgmma_enabled().
bool flash_forward_available(const AttnDims& d, const flash::Knobs& kn);
void flash_forward(const AttnDims& d, const flash::Knobs& kn, float scale, const void* q, const void* k, const void* v,
                   void* out, float* lse);

}  // namespace gta::kernels::sm90a
