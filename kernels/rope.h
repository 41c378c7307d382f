// Rotate-half RoPE (CUDA). Plain C++ declarations, no CUDA types. dtypes f32 and bf16.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace gta::kernels {

// x, y contiguous [B, T, H, D]; rotates the first rot_dim features of every head at positions
// pos0 .. pos0+T-1 (inverse: by the negative angle, the gradient). y may not alias x. With
// `position` (device int32), position[0] is added to pos0 when the kernels run (a CUDA-graph
// decode step replayed at every position).
void rope(DType dtype, void* y, const void* x, int64_t B, int64_t T, int64_t H, int64_t D, int rot_dim, double theta,
          int64_t pos0, bool inverse, const int32_t* position = nullptr);

}  // namespace gta::kernels
