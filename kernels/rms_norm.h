// Fused RMSNorm over the last dimension (CUDA), alone or fused with the residual add before it.
// Plain C++ declarations, no CUDA types. dtypes f32 and bf16 (x, r, h, w, y, g, dx, dw share it);
// statistics in fp32; rstd is f32 [rows].
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace gta::kernels {

void rms_norm_forward(DType dtype, void* y, float* rstd, const void* x, const void* w, int64_t rows, int64_t d,
                      double eps);
// h = x + r (rounded to the dtype, as the elementwise add rounds it), then y = rms_norm(h) w: one
// pass that reads x and r once.
void add_rms_norm_forward(DType dtype, void* h, void* y, float* rstd, const void* x, const void* r, const void* w,
                          int64_t rows, int64_t d, double eps);

// Floats of scratch rms_norm_backward needs for dw (0 when rows == 0).
int64_t rms_norm_backward_scratch(int64_t rows, int64_t d);
// dx always; dw when non-null (then `scratch` holds rms_norm_backward_scratch floats). x is the
// normalised input (h for the fused op). When dx_add is non-null it is added to dx in the same
// pass: the gradient that reaches the norm's input by another path (the residual stream).
void rms_norm_backward(DType dtype, void* dx, void* dw, float* scratch, const void* g, const void* x, const void* w,
                       const float* rstd, int64_t rows, int64_t d, const void* dx_add);

}  // namespace gta::kernels
