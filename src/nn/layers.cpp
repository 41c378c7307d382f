#include "nn/layers.h"

#include "ops/ops.h"

namespace gta::nn {

Linear::Linear(Params& p, const std::string& name, int64_t in, int64_t out, bool with_bias, double std) {
  weight = p.add(name + ".weight", {out, in}, Init::normal, std);
  if (with_bias) bias = p.add(name + ".bias", {out}, Init::zeros);
}

Tensor Linear::operator()(const Tensor& x) const { return ops::linear(x, weight, bias); }

RMSNorm::RMSNorm(Params& p, const std::string& name, int64_t dim, double eps_) : eps(eps_) {
  weight = p.add(name + ".weight", {dim}, Init::ones);
}

Tensor RMSNorm::operator()(const Tensor& x) const { return ops::rms_norm(x, weight, eps); }

std::pair<Tensor, Tensor> RMSNorm::add_norm(const Tensor& x, const Tensor& r) const {
  return ops::add_rms_norm(x, r, weight, eps);
}

MLP::MLP(Params& p, const std::string& prefix, int64_t d, int64_t d_ff, double std, double out_std)
    : gate(p, prefix + "gate_proj", d, d_ff, false, std),
      up(p, prefix + "up_proj", d, d_ff, false, std),
      down(p, prefix + "down_proj", d_ff, d, false, out_std) {}

Tensor MLP::operator()(const Tensor& x) const { return down(ops::swiglu(gate(x), up(x))); }

}  // namespace gta::nn
