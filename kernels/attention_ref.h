// The reference (tiled, CUDA-core) causal attention kernels behind ops::attention on the GPU.
// Plain C++ declarations, no CUDA types. dtypes f32 and bf16 (bf16 storage, fp32 arithmetic);
// q, k, v, out and the gradients contiguous [B, T|S, heads, width]; lse and dsum f32 [B, n_q, T].
// Launchers run on the current device's stream. See attention_ref.cu for the math.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "kernels/attention_problem.h"

namespace gta::kernels {

// out = softmax(scale q k^T + causal mask) v per query head; lse = the row log-sum-exp (natural log).
void attention_forward(DType dtype, const AttnDims& d, float scale, const void* q, const void* k, const void* v,
                       void* out, float* lse);

// dq, dk, dv from dout, recomputing P from lse. dsum: scratch of B*n_q*T floats. Every output
// element is written (no prior zeroing needed); the result is deterministic (no atomics).
void attention_backward(DType dtype, const AttnDims& d, float scale, const void* q, const void* k, const void* v,
                        const void* out, const void* dout, const float* lse, float* dsum, void* dq, void* dk,
                        void* dv);

}  // namespace gta::kernels
