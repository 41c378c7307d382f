#include "optim/adamw.h"

#include <cmath>
#include <set>
#include <type_traits>
#include <unordered_map>

#include "core/cuda_runtime.h"
#include "core/error.h"
#include "kernels/adamw.h"
#include "ops/copy.h"

namespace gta::optim {

bool is_norm_name(const std::string& name) { return name.find("norm") != std::string::npos; }

bool is_bias_name(const std::string& name) {
  const std::string suffix = ".bias";
  return name == "bias" ||
         (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0);
}

bool is_embedding_name(const std::string& name) { return name.find("embed_tokens") != std::string::npos; }

bool default_decays(const std::string& name, const Shape& shape, const config::OptimConfig& cfg) {
  if (is_embedding_name(name)) return cfg.decay_embeddings;
  if (is_norm_name(name) || is_bias_name(name) || shape.size() < 2) return cfg.decay_norms_and_biases;
  return true;
}

namespace {

// Elements per parallel chunk below which the update runs on one thread.
constexpr int64_t kParallelMin = 1 << 15;

template <typename S, typename T>
inline S load_as(T v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return static_cast<S>(static_cast<float>(v));
  } else {
    return static_cast<S>(v);
  }
}

template <typename T, typename S>
inline T store_as(S v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return bf16(static_cast<float>(v));
  } else {
    return static_cast<T>(v);
  }
}

// The per-step scalars, computed once in double and rounded to the state type S.
template <typename S>
struct Coeffs {
  S b1, one_minus_b1, b2, one_minus_b2, inv_bc1, inv_bc2, lr, eps, decay_mult;
  bool decay;
};

// p: the parameter (P), master: its f32 copy or null, m/v: state (S), g: gradient (G).
template <typename P, typename S, typename G>
void adamw_kernel(P* p, S* master, S* m, S* v, const G* g, int64_t n, const Coeffs<S>& c) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const S gi = load_as<S>(g[i]);
    const S mi = c.b1 * m[i] + c.one_minus_b1 * gi;
    const S vi = c.b2 * v[i] + c.one_minus_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    S w = master ? master[i] : load_as<S>(p[i]);
    if (c.decay) w = w * c.decay_mult;  // decoupled weight decay, applied before the Adam term
    const S mhat = mi * c.inv_bc1;
    const S vhat = vi * c.inv_bc2;
    w = w - c.lr * mhat / (std::sqrt(vhat) + c.eps);
    if (master) master[i] = w;
    p[i] = store_as<P>(w);
  }
}

template <typename S>
Coeffs<S> make_coeffs(const config::OptimConfig& cfg, double lr, int64_t t, bool decay) {
  const double bc1 = 1.0 - std::pow(cfg.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(cfg.beta2, static_cast<double>(t));
  Coeffs<S> c;
  c.b1 = static_cast<S>(cfg.beta1);
  c.one_minus_b1 = static_cast<S>(1.0 - cfg.beta1);
  c.b2 = static_cast<S>(cfg.beta2);
  c.one_minus_b2 = static_cast<S>(1.0 - cfg.beta2);
  c.inv_bc1 = static_cast<S>(1.0 / bc1);
  c.inv_bc2 = static_cast<S>(1.0 / bc2);
  c.lr = static_cast<S>(lr);
  c.eps = static_cast<S>(cfg.eps);
  c.decay = decay && cfg.weight_decay != 0.0;
  c.decay_mult = static_cast<S>(1.0 - lr * cfg.weight_decay);
  return c;
}

// Runs the kernel on host tensors: param (contiguous), grad (contiguous, same shape).
void update_host(const Tensor& param, const Tensor& grad, const Tensor& master, const Tensor& m, const Tensor& v,
                 const config::OptimConfig& cfg, double lr, int64_t t, bool decay) {
  const int64_t n = param.numel();
  auto with_grad = [&](auto ptag, auto stag) {
    using P = decltype(ptag);
    using S = decltype(stag);
    const Coeffs<S> c = make_coeffs<S>(cfg, lr, t, decay);
    S* mp = master.defined() ? master.data<S>() : nullptr;
    switch (grad.dtype()) {
      case DType::f32: adamw_kernel(param.data<P>(), mp, m.data<S>(), v.data<S>(), grad.data<float>(), n, c); break;
      case DType::f64: adamw_kernel(param.data<P>(), mp, m.data<S>(), v.data<S>(), grad.data<double>(), n, c); break;
      case DType::bf16: adamw_kernel(param.data<P>(), mp, m.data<S>(), v.data<S>(), grad.data<bf16>(), n, c); break;
      default: fail("AdamW: gradient has dtype {}, expected a floating type", dtype_name(grad.dtype()));
    }
  };
  switch (param.dtype()) {
    case DType::f32: with_grad(float{}, float{}); break;
    case DType::f64: with_grad(double{}, double{}); break;
    case DType::bf16: with_grad(bf16{}, float{}); break;
    default: fail("AdamW: parameter has dtype {}, expected a floating type", dtype_name(param.dtype()));
  }
}

// Whether a parameter's state lives beside it on the GPU and the fused multi-tensor kernel updates it
// (f32 and bf16 parameters on a GPU of a CUDA build); other GPU parameters take the host round trip.
bool on_gpu_path(const Tensor& p) {
  return p.device().is_cuda() && (p.dtype() == DType::f32 || p.dtype() == DType::bf16);
}

// dst = src converted to dst's dtype, on dst's device (dst contiguous).
void assign(const Tensor& dst, const Tensor& src) {
  if (dst.device().is_cpu()) {
    copy_strided(dst, src.detach().to(Device::cpu()));
    return;
  }
  Tensor h = src.detach().to(Device::cpu()).to(dst.dtype()).contiguous();
  copy_bytes(dst.raw_data(), dst.device(), h.raw_data(), Device::cpu(), h.nbytes());
}

}  // namespace

AdamW::AdamW(const NamedTensors& params, const config::OptimConfig& cfg) : cfg_(cfg) {
  GTA_CHECK(cfg.beta1 >= 0 && cfg.beta1 < 1, "AdamW: beta1 must be in [0, 1), got {}", cfg.beta1);
  GTA_CHECK(cfg.beta2 >= 0 && cfg.beta2 < 1, "AdamW: beta2 must be in [0, 1), got {}", cfg.beta2);
  GTA_CHECK(cfg.eps > 0, "AdamW: eps must be > 0, got {}", cfg.eps);
  GTA_CHECK(cfg.weight_decay >= 0, "AdamW: weight_decay must be >= 0, got {}", cfg.weight_decay);
  std::unordered_map<const TensorImpl*, size_t> by_impl;
  std::set<std::string> names;
  for (const auto& [name, t] : params) {
    GTA_CHECK(t.defined(), "AdamW: parameter {} is an undefined tensor", name);
    GTA_CHECK(names.insert(name).second, "AdamW: parameter {} listed twice", name);
    GTA_CHECK(is_floating(t.dtype()), "AdamW: parameter {} has dtype {}, expected f32, bf16 or f64", name,
              dtype_name(t.dtype()));
    GTA_CHECK(t.is_contiguous(), "AdamW: parameter {} ({}) is not contiguous", name, t.str());
    auto it = by_impl.find(t.impl());
    if (it != by_impl.end()) {
      // Same tensor under a second name: updated once, under the first name. A tensor that is an
      // embedding under either name is treated as an embedding.
      Slot& s = slots_[it->second];
      if (is_embedding_name(name) && !is_embedding_name(s.name)) s.decay = cfg_.decay_embeddings;
      aliases_.push_back(name);
      index_[name] = it->second;
      continue;
    }
    Slot s;
    s.name = name;
    s.param = t;
    s.decay = default_decays(name, t.shape(), cfg_);
    const DType state_dtype = t.dtype() == DType::f64 ? DType::f64 : DType::f32;
    const Device state_dev = on_gpu_path(t) ? t.device() : Device::cpu();
    s.exp_avg = Tensor::zeros(t.shape(), state_dtype, state_dev);
    s.exp_avg_sq = Tensor::zeros(t.shape(), state_dtype, state_dev);
    if (t.dtype() == DType::bf16) s.master = t.detach().to(Device::cpu()).to(DType::f32).clone().to(state_dev);
    by_impl[t.impl()] = slots_.size();
    index_[name] = slots_.size();
    slots_.push_back(std::move(s));
  }
}

const AdamW::Slot& AdamW::slot(const std::string& name) const {
  auto it = index_.find(name);
  GTA_CHECK(it != index_.end(), "AdamW: no parameter named {}", name);
  return slots_[it->second];
}

bool AdamW::decays(const std::string& name) const { return slot(name).decay; }

std::vector<std::string> AdamW::decay_group() const {
  std::vector<std::string> out;
  for (const Slot& s : slots_)
    if (s.decay) out.push_back(s.name);
  return out;
}

std::vector<std::string> AdamW::no_decay_group() const {
  std::vector<std::string> out;
  for (const Slot& s : slots_)
    if (!s.decay) out.push_back(s.name);
  return out;
}

void AdamW::step(double lr) {
  GTA_CHECK(std::isfinite(lr) && lr >= 0, "AdamW: learning rate must be finite and >= 0, got {}", lr);
  ++step_;
  // GPU parameters (f32, bf16): one fused launch per device over all of them.
  std::map<int, std::vector<kernels::AdamWTensor>> gpu_batches;
  std::vector<Tensor> keep;  // contiguous gradients alive until the launches are queued
  const Coeffs<float> cf = make_coeffs<float>(cfg_, lr, step_, true);
  for (Slot& s : slots_) {
    Tensor g = s.param.grad();
    if (!g.defined()) continue;
    GTA_CHECK(g.shape() == s.param.shape(), "AdamW: gradient of {} has shape {}, the parameter {}", s.name,
              shape_str(g.shape()), shape_str(s.param.shape()));
    GTA_CHECK(g.device() == s.param.device(), "AdamW: gradient of {} is on {}, the parameter on {}", s.name,
              g.device().str(), s.param.device().str());
    if (on_gpu_path(s.param) && (g.dtype() == DType::f32 || g.dtype() == DType::bf16)) {
      Tensor gc = g.contiguous();
      keep.push_back(gc);
      kernels::AdamWTensor d;
      d.param = s.param.raw_data();
      d.master = s.master.defined() ? s.master.data<float>() : nullptr;
      d.m = s.exp_avg.data<float>();
      d.v = s.exp_avg_sq.data<float>();
      d.grad = gc.raw_data();
      d.n = s.param.numel();
      d.param_dtype = s.param.dtype();
      d.grad_dtype = gc.dtype();
      d.decay = s.decay && cf.decay;
      gpu_batches[s.param.device().index].push_back(d);
      continue;
    }
    if (s.param.device().is_cpu()) {
      update_host(s.param, g.contiguous(), s.master, s.exp_avg, s.exp_avg_sq, cfg_, lr, step_, s.decay);
    } else {
      // Host round trip until a fused device kernel exists.
      Tensor p_host = s.param.detach().to(Device::cpu()).contiguous();
      Tensor g_host = g.detach().to(Device::cpu()).contiguous();
      update_host(p_host, g_host, s.master, s.exp_avg, s.exp_avg_sq, cfg_, lr, step_, s.decay);
      copy_bytes(s.param.raw_data(), s.param.device(), p_host.raw_data(), Device::cpu(), p_host.nbytes());
    }
  }
  const kernels::AdamWCoeffs kc{cf.b1,      cf.one_minus_b1, cf.b2,  cf.one_minus_b2, cf.inv_bc1,
                                cf.inv_bc2, cf.lr,           cf.eps, cf.decay_mult};
  for (const auto& [device, batch] : gpu_batches) {
    cuda::DeviceGuard guard(device);
    kernels::adamw_step(batch, kc);
  }
}

void AdamW::zero_grad() {
  for (Slot& s : slots_) s.param.zero_grad();
}

AdamWState AdamW::state() const {
  AdamWState st;
  st.step = step_;
  for (const Slot& s : slots_) {
    st.tensors[s.name + ".exp_avg"] = s.exp_avg;
    st.tensors[s.name + ".exp_avg_sq"] = s.exp_avg_sq;
    if (s.master.defined()) st.tensors[s.name + ".master"] = s.master;
  }
  return st;
}

void AdamW::load_state(const AdamWState& st, const std::string& source) {
  GTA_CHECK(st.step >= 0, "{}: step count must be >= 0, got {}", source, st.step);
  std::set<std::string> expected;
  auto check = [&](const std::string& key, const Slot& s, bool required) -> const Tensor* {
    auto it = st.tensors.find(key);
    if (it == st.tensors.end()) {
      GTA_CHECK(!required, "{}: missing tensor {} for parameter {} (shape {}); was the state written for another model?",
                source, key, s.name, shape_str(s.param.shape()));
      return nullptr;
    }
    const Tensor& t = it->second;
    GTA_CHECK(t.defined(), "{}: tensor {} is undefined", source, key);
    GTA_CHECK(t.shape() == s.param.shape(), "{}: tensor {} has shape {}, parameter {} has shape {}", source, key,
              shape_str(t.shape()), s.name, shape_str(s.param.shape()));
    GTA_CHECK(is_floating(t.dtype()), "{}: tensor {} has dtype {}, expected a floating type", source, key,
              dtype_name(t.dtype()));
    return &t;
  };
  // Validate everything before changing anything.
  std::vector<std::pair<Tensor, const Tensor*>> copies;
  for (const Slot& s : slots_) {
    for (const char* suffix : {".exp_avg", ".exp_avg_sq"}) {
      const std::string key = s.name + suffix;
      expected.insert(key);
      copies.emplace_back(std::string(suffix) == ".exp_avg" ? s.exp_avg : s.exp_avg_sq, check(key, s, true));
    }
    const std::string mkey = s.name + ".master";
    if (s.master.defined()) {
      expected.insert(mkey);
      // A missing master (state from an f32 run) is rebuilt from the current parameter values.
      const Tensor* mt = check(mkey, s, false);
      copies.emplace_back(s.master, mt);
    } else if (st.tensors.count(mkey)) {
      // State of a bf16 run continued in f32 (a GPU run resumed on the CPU, say): the checkpoint's
      // model file holds the master weights, which the parameter now equals; the copy is not needed.
      check(mkey, s, false);
      expected.insert(mkey);
    }
  }
  for (const auto& [key, t] : st.tensors) {
    if (expected.count(key)) continue;
    GTA_CHECK(false, "{}: unexpected tensor {} (no such parameter in this model)", source, key);
  }
  for (auto& [dst, src] : copies) {
    if (src) assign(dst, *src);
  }
  for (const Slot& s : slots_) {
    if (s.master.defined() && !st.tensors.count(s.name + ".master")) assign(s.master, s.param);
  }
  step_ = st.step;
}

}  // namespace gta::optim
