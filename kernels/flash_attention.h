// FlashAttention-2-style tensor-core kernels (bf16 in, fp32 accumulate) for the general causal
// attention primitive; the same problem and the same AttnDims as the reference kernels
// (kernels/attention_problem.h): q [B,T,n_q,d_qk], k [B,S,n_k,d_qk], v [B,S,n_v,d_v] contiguous bf16,
// out [B,T,n_q,d_v] bf16, lse f32 [B,n_q,T] (natural log). Plain C++ declarations, no CUDA types.
// Launchers run on the current device's stream. See flash_attention.cu for the math and tiling.
#pragma once
#include <cstddef>

#include "kernels/attention_problem.h"

namespace gta::kernels {

// Whether the flash kernels cover these sizes: d_qk in {64, 96, 128}, d_v in {64, 96, 128, 192},
// n_k and n_v dividing n_q, sizes the grids can hold. The dtype (bf16 only) and 16-byte aligned
// pointers are the caller's to check.
bool flash_attention_supported(const AttnDims& d);

// out = softmax(scale q k^T + causal mask) v per query head; saves only lse.
void flash_attention_forward(const AttnDims& d, float scale, const void* q, const void* k, const void* v, void* out,
                             float* lse);

// Bytes of device scratch flash_attention_backward needs (a multiple of 256, at least 256).
size_t flash_attention_backward_scratch_bytes(const AttnDims& d);

// dq, dk, dv (bf16, every element written) from dout, recomputing P from lse. scratch: at least
// flash_attention_backward_scratch_bytes(d) bytes of device memory, 16-byte aligned. Deterministic:
// no atomics, every sum in a fixed order.
void flash_attention_backward(const AttnDims& d, float scale, const void* q, const void* k, const void* v,
                              const void* out, const void* dout, const float* lse, void* scratch, void* dq, void* dk,
                              void* dv);

}  // namespace gta::kernels
