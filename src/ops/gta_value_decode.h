// GTA's value decoder and output gate for one token per sequence, fused on the GPU
// (kernels/gta_value_decode.h): sigmoid(g) * (tile(o, e) + o Wb_i per group i). Inference only
// (no autograd); CUDA bf16 only: elsewhere the attention layer composes the same math from
// primitive ops, which is also what it trains with.
#pragma once
#include "core/tensor.h"

namespace gta::ops {

// o [B, n_q, d_l], wb: v_b_proj.weight [e d_l, n_q d_l], g [B, n_q e d_l] (the pre-activation).
bool gta_value_decode_supported(const Tensor& o, const Tensor& wb, const Tensor& g);
// -> [B, n_q e d_l]; the sizes must be supported.
Tensor gta_value_decode(const Tensor& o, const Tensor& wb, const Tensor& g);

}  // namespace gta::ops
