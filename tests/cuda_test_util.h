// Shared by the GPU test files: skip without a GPU, the device, a fresh seed per run
// (GTA_TEST_SEED=N repeats a run), and the CPU-vs-GPU comparison helpers (normwise error, inputs
// rounded through the GPU dtype).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/device.h"
#include "core/tensor.h"
#include "gradcheck.h"

#define SKIP_WITHOUT_CUDA() \
  if (!gta::cuda_available()) GTEST_SKIP() << "no CUDA device (or a CPU-only build)"

namespace gta_test {

inline const gta::Device kGpu = gta::Device::cuda(0);

inline uint64_t fresh_seed() {
  if (const char* s = std::getenv("GTA_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  static std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

// ||got - want||_2 / ||want||_2 (the absolute norm when want is 0); NaN or inf never passes.
inline double normwise(const std::vector<double>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) || std::isinf(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// x rounded through dtype t, back in f64 on the CPU: the numbers both sides start from.
inline gta::Tensor rounded(const gta::Tensor& x, gta::DType t) { return x.detach().to(t).to(gta::DType::f64); }

// ---- one autograd graph on the CPU in f64 and on the GPU in a lower dtype ----------------------

struct GraphLimits {
  double out = -1, grad = -1;              // normwise limits; < 0: the caller's default
  gta::DType out_dtype = gta::DType::f64;  // the GPU output's dtype; f64: the GPU dtype itself
};

struct GraphCheck {
  double out_err = 0;
  std::vector<double> grad_err;  // per input that requires grad
};

// Runs fn on CPU f64 copies of `inputs` and on GPU copies in dtype dt, both starting from the
// same numbers (floating inputs rounded through dt; those requiring grad are leaves on both
// sides; integer inputs pass through, moved to the GPU). Backward is seeded on both sides with
// the same random output gradient (from `seed`). Records a failure for any output or gradient
// whose normwise error exceeds its limit (default_tol where `lim` gives none), for a gradient
// present on one side only, and for a wrong device or dtype; `note` sees every error measured.
inline GraphCheck compare_graph_with_cpu(const std::string& what,
                                         const std::function<gta::Tensor(const std::vector<gta::Tensor>&)>& fn,
                                         const std::vector<gta::Tensor>& inputs, gta::DType dt, uint64_t seed,
                                         double default_tol, GraphLimits lim = {},
                                         const std::function<void(gta::DType, double)>& note = {}) {
  using gta::Tensor;
  const double tol_out = lim.out < 0 ? default_tol : lim.out, tol_grad = lim.grad < 0 ? default_tol : lim.grad;
  SCOPED_TRACE(what + " on GPU " + gta::dtype_name(dt) + " (seed " + std::to_string(seed) + ")");
  std::vector<Tensor> cpu_in, gpu_in;
  for (const Tensor& x : inputs) {
    if (!gta::is_floating(x.dtype())) {
      cpu_in.push_back(x);
      gpu_in.push_back(x.to(kGpu));
      continue;
    }
    Tensor r = rounded(x, dt);
    Tensor c = r.clone().detach(), g = r.to(dt).to(kGpu).detach();
    if (x.requires_grad()) {
      c.set_requires_grad(true);
      g.set_requires_grad(true);
    }
    cpu_in.push_back(c);
    gpu_in.push_back(g);
  }
  Tensor yc = fn(cpu_in), yg = fn(gpu_in);
  GraphCheck res;
  EXPECT_EQ(yg.device(), kGpu);
  EXPECT_EQ(yg.dtype(), lim.out_dtype == gta::DType::f64 ? dt : lim.out_dtype);
  EXPECT_EQ(yg.shape(), yc.shape());
  res.out_err = normwise(yg.to_doubles(), yc.to_doubles());
  if (note) note(dt, res.out_err);
  EXPECT_LE(res.out_err, tol_out) << "output " << yg.str();
  if (!yc.requires_grad()) return res;
  Rng rng(seed ^ 0x9e3779b97f4a7c15ull);
  Tensor seed_grad = rounded(randn(rng, yc.shape()), yg.dtype());
  yc.backward(seed_grad);
  yg.backward(seed_grad.to(yg.dtype()).to(kGpu));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    Tensor gc = cpu_in[i].grad(), gg = gpu_in[i].grad();
    if (!gc.defined() || !gg.defined()) {
      EXPECT_EQ(gc.defined(), gg.defined()) << "input " << i << ": a gradient on one side only";
      res.grad_err.push_back(gc.defined() == gg.defined() ? 0 : INFINITY);
      continue;
    }
    EXPECT_EQ(gg.device(), kGpu) << "input " << i;
    EXPECT_EQ(gg.dtype(), dt) << "input " << i;
    const double e = normwise(gg.to_doubles(), gc.to_doubles());
    res.grad_err.push_back(e);
    if (note) note(dt, e);
    EXPECT_LE(e, tol_grad) << "gradient of input " << i << " " << gg.str();
  }
  return res;
}

}  // namespace gta_test
