// Test helpers shared by the op and autograd tests:
//   - Rng: a tiny deterministic generator (splitmix64 + Box-Muller), so every test draws the
//     same numbers on every machine and thread count;
//   - randn / uniform / randint tensors from it;
//   - close(): compares two value lists and names the worst element;
//   - gradcheck(): autograd gradients against central finite differences, in f64.
//
// gradcheck(fn, inputs): the scalar loss is L(x) = sum(fn(x) * R) for a fixed random tensor R of
// fn's output shape, so every output element contributes. The autograd side runs
// fn(x).backward(R) (the gradient of that sum with respect to fn's output is R); the numeric side
// perturbs each element of every checked input by +-eps on a detached copy and takes
// (L(x+eps) - L(x-eps)) / (2 eps). Checked inputs are the floating inputs that require grad;
// the others (integer ids, constants) are passed through unchanged and must get no gradient.
// Error metric per element: |a - n| / max(1, |a|, |n|).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "autograd/tape.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace gta_test {

using gta::DType;
using gta::Shape;
using gta::Tensor;

// ---- deterministic random numbers -------------------------------------------------------------
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next_u64() { return gta::splitmix64(state_); }
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() {  // Box-Muller, the second value cached
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 0;
    while (u1 <= 0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double a = 2.0 * 3.14159265358979323846 * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }
  int64_t randint(int64_t lo, int64_t hi) {  // [lo, hi)
    return lo + static_cast<int64_t>(next_u64() % static_cast<uint64_t>(hi - lo));
  }

 private:
  uint64_t state_;
  bool has_spare_ = false;
  double spare_ = 0;
};

inline std::vector<double> randn_values(Rng& rng, int64_t n, double stddev = 1.0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = stddev * rng.normal();
  return v;
}

// Normal(0, stddev) values in `dtype` (drawn in f64, then converted).
inline Tensor randn(Rng& rng, const Shape& shape, DType dtype = DType::f64, double stddev = 1.0) {
  return Tensor::from_doubles(randn_values(rng, gta::shape_numel(shape), stddev), shape, dtype);
}

inline Tensor uniform(Rng& rng, const Shape& shape, double lo, double hi, DType dtype = DType::f64) {
  std::vector<double> v(static_cast<size_t>(gta::shape_numel(shape)));
  for (double& x : v) x = rng.uniform(lo, hi);
  return Tensor::from_doubles(v, shape, dtype);
}

// A leaf that requires grad.
inline Tensor param(Tensor t) {
  t.set_requires_grad(true);
  return t;
}
inline Tensor randn_param(Rng& rng, const Shape& shape, double stddev = 1.0) {
  return param(randn(rng, shape, DType::f64, stddev));
}

// Integer ids in [lo, hi) as i64 (or i32).
inline Tensor randint(Rng& rng, const Shape& shape, int64_t lo, int64_t hi, DType dtype = DType::i64) {
  std::vector<int64_t> v(static_cast<size_t>(gta::shape_numel(shape)));
  for (int64_t& x : v) x = rng.randint(lo, hi);
  Tensor t = Tensor::from_vector(v, shape);
  return dtype == DType::i64 ? t : t.to(dtype);
}

// Multi-index of flat row-major element `i` of `shape`, as "[a, b, c]".
inline std::string index_str(int64_t i, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = shape[d] ? i % shape[d] : 0;
    i = shape[d] ? i / shape[d] : 0;
  }
  return gta::shape_str(idx);
}

// ---- value comparison -------------------------------------------------------------------------
// Passes when |got - want| <= atol + rtol * |want| for every element (NaN never passes); the
// failure message names the worst element (by excess over its bound) and the count of failures.
inline ::testing::AssertionResult close(const std::vector<double>& got, const std::vector<double>& want,
                                        double atol, double rtol = 0.0, const Shape& shape = {}) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != expected " << want.size();
  int64_t worst = -1, n_bad = 0;
  double worst_excess = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = atol + rtol * std::fabs(want[i]);
    const double diff = std::fabs(got[i] - want[i]);
    const bool bad = !(diff <= bound);  // NaN-safe
    if (!bad) continue;
    ++n_bad;
    const double excess = std::isnan(diff) ? INFINITY : diff - bound;
    if (worst < 0 || excess > worst_excess) {
      worst = static_cast<int64_t>(i);
      worst_excess = excess;
    }
  }
  if (n_bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream os;
  os.precision(17);
  os << n_bad << " of " << got.size() << " elements differ; worst at element " << worst;
  if (!shape.empty()) os << " " << index_str(worst, shape);
  os << ": got " << got[worst] << ", expected " << want[worst] << " (|diff| "
     << std::fabs(got[worst] - want[worst]) << ", atol " << atol << ", rtol " << rtol << ")";
  return ::testing::AssertionFailure() << os.str();
}

inline ::testing::AssertionResult close(const Tensor& got, const std::vector<double>& want, double atol,
                                        double rtol = 0.0) {
  return close(got.to_doubles(), want, atol, rtol, got.shape());
}

inline ::testing::AssertionResult close(const Tensor& got, const Tensor& want, double atol, double rtol = 0.0) {
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << "shape " << gta::shape_str(got.shape()) << " != expected "
                                         << gta::shape_str(want.shape());
  return close(got.to_doubles(), want.to_doubles(), atol, rtol, got.shape());
}

// ---- gradient check ---------------------------------------------------------------------------
using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradCheckResult {
  bool ok = true;
  double max_err = 0;      // worst relative error over all checked elements
  int input = -1;          // where it occurred
  int64_t element = -1;
  double analytic = 0, numeric = 0;
  int64_t n_checked = 0;   // elements compared
  std::string message;     // the first structural problem, or the worst element
};

inline double grad_rel_err(double a, double n) {
  return std::fabs(a - n) / std::max({1.0, std::fabs(a), std::fabs(n)});
}

inline GradCheckResult gradcheck(const GradFn& fn, const std::vector<Tensor>& inputs, double eps = 1e-6,
                                 double tol = 1e-6, uint64_t seed = 0x5eed) {
  GradCheckResult res;
  auto fail = [&res](const std::string& m) {
    res.ok = false;
    if (res.message.empty()) res.message = m;
    return res;
  };
  // Fresh leaves (own contiguous storage, no history) for the autograd pass.
  std::vector<Tensor> leaves(inputs.size());
  std::vector<bool> checked(inputs.size(), false);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined()) continue;
    if (x.requires_grad()) {
      if (x.dtype() != DType::f64) return fail("input " + std::to_string(i) + " is " + x.str() + ", gradcheck needs f64");
      checked[i] = true;
      leaves[i] = x.detach().clone();
      leaves[i].set_requires_grad(true);
    } else {
      leaves[i] = x;
    }
  }
  Tensor out = fn(leaves);
  if (!out.defined()) return fail("fn returned an undefined tensor");
  if (out.dtype() != DType::f64) return fail("fn returned " + out.str() + ", gradcheck needs f64");
  if (!out.requires_grad()) return fail("the output does not require grad: autograd did not record the op");
  Rng rng(seed);
  Tensor r = randn(rng, out.shape(), DType::f64);
  const std::vector<double> rv = r.to_doubles();
  out.backward(r);

  for (size_t i = 0; i < inputs.size(); ++i) {
    if (checked[i] || !leaves[i].defined() || !gta::is_floating(leaves[i].dtype())) continue;
    if (leaves[i].grad().defined())
      return fail("input " + std::to_string(i) + " does not require grad but received a gradient");
  }

  auto loss_of = [&rv](const Tensor& y) {
    std::vector<double> yv = y.to_doubles();
    double acc = 0;
    for (size_t k = 0; k < yv.size() && k < rv.size(); ++k) acc += yv[k] * rv[k];
    return acc;
  };
  // Detached working copies for the numeric pass; perturbed in place.
  std::vector<Tensor> work(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    work[i] = checked[i] ? inputs[i].detach().clone() : inputs[i];
  }
  gta::autograd::NoGradGuard no_grad;
  // The numeric pass runs thousands of tiny forwards: one thread each (threads only add
  // overhead there, a lot of it on a loaded machine). The autograd pass above used the default.
  struct OneThread {
#ifdef _OPENMP
    int prev = omp_get_max_threads();
    OneThread() { omp_set_num_threads(1); }
    ~OneThread() { omp_set_num_threads(prev); }
#endif
  } one_thread;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!checked[i]) continue;
    const std::string who = "input " + std::to_string(i);
    Tensor g = leaves[i].grad();
    if (!g.defined()) return fail(who + " requires grad but got no gradient");
    if (g.shape() != inputs[i].shape())
      return fail(who + ": gradient shape " + gta::shape_str(g.shape()) + " != input shape " +
                  gta::shape_str(inputs[i].shape()));
    if (g.dtype() != DType::f64) return fail(who + ": gradient dtype is " + g.str());
    const std::vector<double> ga = g.to_doubles();
    double* p = work[i].data<double>();
    const int64_t n = work[i].numel();
    for (int64_t j = 0; j < n; ++j) {
      const double orig = p[j];
      p[j] = orig + eps;
      const double lp = loss_of(fn(work));
      p[j] = orig - eps;
      const double lm = loss_of(fn(work));
      p[j] = orig;
      const double num = (lp - lm) / (2 * eps);
      const double err = grad_rel_err(ga[j], num);
      ++res.n_checked;
      if (res.input < 0 || std::isnan(err) || err > res.max_err) {  // NaN counts as worst
        res.max_err = std::isnan(err) ? INFINITY : err;
        res.input = static_cast<int>(i);
        res.element = j;
        res.analytic = ga[j];
        res.numeric = num;
      }
    }
  }
  if (res.n_checked == 0) return fail("no input requires grad: nothing checked");
  std::ostringstream os;
  os.precision(12);
  os << "worst relative error " << res.max_err << " (tol " << tol << ") at input " << res.input << " element "
     << res.element << " " << index_str(res.element, inputs[res.input].shape()) << ": autograd " << res.analytic
     << " vs numeric " << res.numeric << " (" << res.n_checked << " elements checked)";
  if (!(res.max_err <= tol)) return fail(os.str());
  res.message = os.str();
  return res;
}

// EXPECT_GRADCHECK(fn, {inputs...}) / with eps and tol.
#define EXPECT_GRADCHECK(...)                                      \
  do {                                                             \
    ::gta_test::GradCheckResult gc_res_ = ::gta_test::gradcheck(__VA_ARGS__); \
    EXPECT_TRUE(gc_res_.ok) << gc_res_.message;                    \
  } while (0)

}  // namespace gta_test
