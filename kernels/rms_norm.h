// Fused RMSNorm over the last dimension (CUDA). Plain C++ declarations, no CUDA types.
// dtypes f32 and bf16 (x, w, y, g, dx, dw share it); statistics in fp32; rstd is f32 [rows].
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace gta::kernels {

void rms_norm_forward(DType dtype, void* y, float* rstd, const void* x, const void* w, int64_t rows, int64_t d,
                      double eps);

// Floats of scratch rms_norm_backward needs for dw (0 when rows == 0).
int64_t rms_norm_backward_scratch(int64_t rows, int64_t d);
// dx always; dw when non-null (then `scratch` holds rms_norm_backward_scratch floats).
void rms_norm_backward(DType dtype, void* dx, void* dw, float* scratch, const void* g, const void* x, const void* w,
                       const float* rstd, int64_t rows, int64_t d);

}  // namespace gta::kernels
