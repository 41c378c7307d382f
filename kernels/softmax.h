// Softmax over the last dimension (CUDA). Plain C++ declarations, no CUDA types. dtypes f32 and
// bf16 (fp32 statistics); all operands contiguous [rows, d].
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace gta::kernels {

void softmax_forward(DType dtype, void* y, const void* x, int64_t rows, int64_t d);
// dx = y (g - sum(g y)), with y = softmax(x) recomputed in fp32 from the forward's input x.
void softmax_backward(DType dtype, void* dx, const void* g, const void* x, int64_t rows, int64_t d);

}  // namespace gta::kernels
