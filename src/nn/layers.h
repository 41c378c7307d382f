// The building blocks of the decoder: Linear, RMSNorm and the SwiGLU MLP.
#pragma once
#include <string>
#include <utility>

#include "nn/params.h"

namespace gta::nn {

// y = x W^T (+ b); W [out, in] under `<name>.weight`, b under `<name>.bias`.
struct Linear {
  Tensor weight, bias;
  Linear() = default;
  Linear(Params& p, const std::string& name, int64_t in, int64_t out, bool bias, double std);
  Tensor operator()(const Tensor& x) const;
};

struct RMSNorm {
  Tensor weight;
  double eps = 1e-5;
  RMSNorm() = default;
  RMSNorm(Params& p, const std::string& name, int64_t dim, double eps);
  Tensor operator()(const Tensor& x) const;
  // {x + r, this norm of x + r} in one fused op (ops::add_rms_norm): a residual add and the norm after it.
  std::pair<Tensor, Tensor> add_norm(const Tensor& x, const Tensor& r) const;
};

// MLP(h) = down(silu(gate(h)) * up(h)), no biases (the gate is one fused op, ops::swiglu).
struct MLP {
  Linear gate, up, down;
  MLP() = default;
  MLP(Params& p, const std::string& prefix, int64_t d, int64_t d_ff, double std, double out_std);
  Tensor operator()(const Tensor& x) const;
};

}  // namespace gta::nn
