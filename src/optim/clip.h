// Gradient norm and clipping over named parameters.
//
// The global norm is sqrt(sum over parameters of sum of g^2), accumulated in double in a fixed
// order (parameters in list order; each gradient in fixed blocks whose partial sums are added in
// order), so it is bit-identical whatever the thread count. A tensor listed twice (same
// TensorImpl) counts once. Parameters without a gradient are skipped. GPU gradients (f32, bf16) are
// reduced on their GPU by one deterministic multi-tensor pass per device (fp64 partials in fixed
// chunks, kernels/adamw.cu) and scaled in place by one launch per device; the GPU sum is added
// after the host ones, so the norm is reproducible run to run but may differ from the CPU's in the
// last bits.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace gta::optim {

// The global L2 norm of all gradients (0 when none has a gradient). May be inf or NaN.
double grad_norm(const std::vector<std::pair<std::string, Tensor>>& params);
// Its square, sum over parameters of sum g^2, before the square root: what ranks holding
// disjoint parameter sets add up for the global norm (ZeRO-1, distributed/zero1.h).
double grad_sum_squares(const std::vector<std::pair<std::string, Tensor>>& params);

// Computes the global norm; when max_norm > 0 and norm > max_norm, scales every gradient in place
// by max_norm / norm. Returns the norm before clipping. A non-finite norm scales nothing: the
// caller decides (skip the step, stop the run) from the returned value.
double clip_grad_norm(const std::vector<std::pair<std::string, Tensor>>& params, double max_norm);

// Multiplies every gradient in place by `factor` (aliases once).
void scale_grads(const std::vector<std::pair<std::string, Tensor>>& params, double factor);

}  // namespace gta::optim
