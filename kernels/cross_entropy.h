// Fused log-softmax + NLL over logits [N, V] (CUDA). Plain C++ declarations, no CUDA types.
// Logits f32 or bf16 (read in place, never copied to fp32); targets i32 or i64 [N]; the loss,
// the row log-sum-exp and the counters are f32 on the device.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace gta::kernels {

// lse[r] = log sum_j exp(x[r, j]);  row_loss[r] = lse[r] - x[r, t_r] (0 where t_r == ignore_index,
// NaN where t_r is out of range); count[0] = number of counted rows; loss[0] = sum row_loss / count
// (0 when count is 0), summed in a fixed order.
void cross_entropy_forward(DType dtype, float* loss, float* count, float* lse, float* row_loss, const void* logits,
                           const void* targets, bool targets_i64, int64_t N, int64_t V, int64_t ignore_index);

// dx[r, j] = g / count * (exp(x[r, j] - lse[r]) - [j == t_r]), 0 for ignored rows; g = gout[0]
// (device f32 scalar). dx has the logits' dtype.
void cross_entropy_backward(DType dtype, void* dx, const float* gout, const float* count, const float* lse,
                            const void* logits, const void* targets, bool targets_i64, int64_t N, int64_t V,
                            int64_t ignore_index);

}  // namespace gta::kernels
