// Multi-tensor optimizer kernels (CUDA) for src/optim: the AdamW step, the squared L2 norm of a
// list of gradients and their in-place scaling, each in one launch over all tensors (plus one
// small final reduction for the norm). Plain C++ declarations, no CUDA types; all tensors on the
// current device, contiguous.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace gta::kernels {

// One parameter of an AdamW step. param: f32 or bf16; master: f32 copy of a bf16 parameter (the
// update runs on it and the parameter receives its rounding) or null; m, v: f32 state; grad: f32
// or bf16.
struct AdamWTensor {
  void* param = nullptr;
  float* master = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  const void* grad = nullptr;
  int64_t n = 0;
  DType param_dtype = DType::f32;
  DType grad_dtype = DType::f32;
  bool decay = false;
};

// The per-step scalars (computed on the host in double, rounded to f32 as the CPU does).
struct AdamWCoeffs {
  float b1, one_minus_b1, b2, one_minus_b2, inv_bc1, inv_bc2, lr, eps, decay_mult;
};

// m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  w = master or p;  w *= decay_mult (decay tensors);
// w -= lr (m inv_bc1) / (sqrt(v inv_bc2) + eps);  master = w;  p = w (rounded to p's dtype).
void adamw_step(const std::vector<AdamWTensor>& tensors, const AdamWCoeffs& c);

// A gradient buffer: f32 or bf16, n elements.
struct GradRef {
  void* data = nullptr;
  int64_t n = 0;
  DType dtype = DType::f32;
};

// sum over tensors and elements of g^2, in fp64: each fixed chunk of a tensor is summed by one
// block in a fixed tree, the chunk partials then summed in list order by one block. Deterministic
// (the order depends only on the list and the sizes). Synchronizes (returns the value to the host).
double grad_sum_squares(const std::vector<GradRef>& grads);

// g *= factor for every gradient (computed in double and rounded once, as the CPU does).
void scale_grads(const std::vector<GradRef>& grads, double factor);

}  // namespace gta::kernels
