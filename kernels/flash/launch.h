// The mma.sync flash kernels' launchers per head-width pair (d_qk, d_v), as kernels/flash_attention.cu
// calls them. They are defined in forward.cuh and backward.cuh and instantiated once per pair,
// each pair in its own file (instantiate_<d_qk>_<d_v>.cu, through GTA_FLASH_INSTANTIATE), so that
// the twelve pairs compile in parallel. Plain C++ declarations, no CUDA types.
#pragma once
#include "kernels/attention_problem.h"
#include "kernels/flash/knobs.h"
#include "kernels/flash/tiling.h"

namespace gta::kernels::flash {

// out and lse of the forward (flash_attention_forward) on the current stream.
template <int DQK, int DV>
void forward_impl(const AttnDims32& d, const Knobs& kn, float scale, const void* q, const void* k, const void* v,
                  void* out, float* lse);

// dq, dk, dv of the backward (flash_attention_backward) on the current stream; scratch laid out
// as scratch_layout says.
template <int DQK, int DV>
void backward_impl(const AttnDims& a, const Knobs& kn, float scale, const void* qv, const void* kv, const void* vv,
                   const void* outv, const void* doutv, const float* lse, void* scratch, void* dqv, void* dkv,
                   void* dvv);

}  // namespace gta::kernels::flash

// The explicit instantiations of one (d_qk, d_v) pair (in namespace gta::kernels::flash).
#define GTA_FLASH_INSTANTIATE(DQK, DV)                                                                               \
  template void forward_impl<DQK, DV>(const AttnDims32&, const Knobs&, float, const void*, const void*, const void*, \
                                      void*, float*);                                                                \
  template void backward_impl<DQK, DV>(const AttnDims&, const Knobs&, float, const void*, const void*, const void*,  \
                                       const void*, const void*, const float*, void*, void*, void*, void*);
