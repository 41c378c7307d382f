// The CUDA backend against the CPU reference: the caching allocator, strided copies and dtype
// conversions, elementwise ops, reductions, cat, linear and matmul, forward and backward.
// Every test skips when no GPU is visible (CPU-only builds and machines).
//
// Method (docs/architecture.md, "Principles": the CPU implementation is the reference): check_graph() runs the same
// autograd graph on the CPU in f64 and on the GPU in f32 or bf16 from identical inputs (drawn in
// f64 and rounded to the GPU dtype first, so both sides see the same numbers), seeds backward with
// the same output gradient, and compares the output and every input gradient by the normwise
// relative error ||gpu - cpu||_2 / ||cpu||_2 (NaN never passes). Inputs are fresh random draws
// each run (the seed is printed on failure; GTA_TEST_SEED=N replays one), shapes are odd (1, 7,
// 33, 129, 1000, ...), and non-contiguous operands enter through transposes and slices.
//
// Limits, and why:
//   f32  1e-5: the inputs are exact in f32, so the error is f32 rounding inside the GPU (unit
//        roundoff 6e-8) grown by the length of the sums and dot products (at most ~1e5 terms in
//        blocked order, so well under 1e-5); TF32 is off for these GEMMs.
//   bf16 1e-2: every stored value (outputs and intermediates, gradients included) is rounded to
//        bf16 (unit roundoff 2^-9 = 2e-3) while sums and GEMMs accumulate in fp32; a graph of a
//        few ops lands at 2e-3..6e-3 normwise. A wrong index or a missing term gives O(1).
//   f64  1e-12 where the GPU runs f64 (cuBLASLt fp64, fp64 reductions).
// Copies and conversions are exact: compared bit for bit (as values) with the CPU's copy_strided.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "autograd/tape.h"
#include "core/cuda_runtime.h"
#include "core/error.h"
#include "core/strided.h"
#include "cuda_test_util.h"
#include "gradcheck.h"
#include "ops/copy.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "kernels/gemm.h"
#endif

namespace {

using namespace gta_test;
namespace ops = gta::ops;
namespace cuda = gta::cuda;
using gta::Device;
using gta::DType;
using gta::Shape;
using gta::shape_numel;
using gta::shape_str;
using gta::Tensor;
using Ts = std::vector<Tensor>;
using Fn = std::function<Tensor(const Ts&)>;


double tolerance(DType t) {
  switch (t) {
    case DType::f32: return 1e-5;
    case DType::bf16: return 1e-2;
    default: return 1e-12;
  }
}

// The worst normwise error check_graph() saw per GPU dtype, printed when the test program ends
// (a record of how far inside its limits each dtype lands on the card that ran it).
struct WorstErrors : ::testing::Environment {
  double f32 = 0, bf16 = 0, f64 = 0;
  void note(DType t, double e) {
    double& w = t == DType::f32 ? f32 : t == DType::bf16 ? bf16 : f64;
    w = std::max(w, e);
  }
  void TearDown() override {
    if (f32 > 0 || bf16 > 0 || f64 > 0)
      std::printf("worst GPU-vs-CPU normwise error over check_graph: f32 %.3g, bf16 %.3g, f64 %.3g\n", f32, bf16, f64);
  }
};
WorstErrors* const g_worst = static_cast<WorstErrors*>(::testing::AddGlobalTestEnvironment(new WorstErrors));

// fn on CPU f64 vs GPU dtype dt (cuda_test_util.h), errors noted in g_worst; tol < 0: tolerance(dt).
GraphCheck check_graph(const std::string& what, const Fn& fn, const Ts& inputs, DType dt, uint64_t seed,
                       double tol = -1) {
  return compare_graph_with_cpu(what, fn, inputs, dt, seed, tolerance(dt), {tol, tol},
                                [](DType t, double e) { g_worst->note(t, e); });
}

// Runs check_graph for f32 and bf16.
void check_both(const std::string& what, const Fn& fn, const Ts& inputs, uint64_t seed) {
  check_graph(what, fn, inputs, DType::f32, seed);
  check_graph(what, fn, inputs, DType::bf16, seed);
}

Tensor rp(Rng& rng, const Shape& s, double stddev = 1.0) { return randn_param(rng, s, stddev); }

// ---- allocator ------------------------------------------------------------------------------------

TEST(CudaAllocator, BucketsRoundUpWithBoundedSlack) {
  SKIP_WITHOUT_CUDA();
  for (size_t n : {size_t{1}, size_t{7}, size_t{512}, size_t{513}, size_t{1000}, size_t{1} << 20,
                   (size_t{1} << 20) + 1, size_t{3} << 20, (size_t{5} << 27) + 12345}) {
    const size_t r = cuda::round_allocation_size(n);
    EXPECT_GE(r, n);
    EXPECT_EQ(r % 512, 0u) << n;
    EXPECT_LE(r, n + n / 8 + 512) << n;
    EXPECT_EQ(cuda::round_allocation_size(r), r) << "a bucket size is its own bucket: " << n;
  }
}

TEST(CudaAllocator, ReusesFreedBlocks) {
  SKIP_WITHOUT_CUDA();
  const std::vector<size_t> sizes = {1, 7, 33, 129, 1000, 4096, 1 << 20, (3 << 20) + 5, 50 << 20};
  auto round_trip = [&] {
    std::vector<void*> ps;
    for (size_t s : sizes) ps.push_back(cuda::device_alloc(s, 0));
    for (size_t i = 0; i < ps.size(); ++i)
      for (size_t j = 0; j < i; ++j) EXPECT_NE(ps[i], ps[j]);
    for (void* p : ps) cuda::device_free(p, 0);
  };
  round_trip();
  const cuda::MemoryStats first = cuda::memory_stats(0);
  cuda::reset_peak_memory_stats(0);
  for (int rep = 0; rep < 5; ++rep) round_trip();
  const cuda::MemoryStats later = cuda::memory_stats(0);
  EXPECT_EQ(later.driver_allocs, first.driver_allocs) << "every block came from the cache";
  EXPECT_EQ(later.cache_hits - first.cache_hits, 5 * sizes.size());
  EXPECT_LE(later.peak_reserved_bytes, first.reserved_bytes);
  EXPECT_EQ(later.allocated_bytes, first.allocated_bytes);

  // Tensors: repeated forward/backward of the same shapes reach a steady peak.
  Rng rng(fresh_seed());
  Tensor w = randn(rng, {129, 33}, DType::f32).to(kGpu).detach();
  w.set_requires_grad(true);
  auto step = [&] {
    Tensor x = randn(rng, {1000, 33}, DType::f32).to(kGpu);
    Tensor loss = ops::mean(ops::silu(ops::linear(x, w)));
    loss.backward();
    w.zero_grad();
  };
  step();
  step();
  const cuda::MemoryStats warm = cuda::memory_stats(0);
  cuda::reset_peak_memory_stats(0);
  for (int rep = 0; rep < 10; ++rep) step();
  const cuda::MemoryStats after = cuda::memory_stats(0);
  EXPECT_EQ(after.driver_allocs, warm.driver_allocs);
  EXPECT_LE(after.peak_allocated_bytes, warm.peak_allocated_bytes);
  EXPECT_EQ(after.allocated_bytes, warm.allocated_bytes);
  // empty_cache returns the cached blocks: reserved falls to what live tensors hold.
  cuda::empty_cache();
  const cuda::MemoryStats emptied = cuda::memory_stats(0);
  EXPECT_EQ(emptied.reserved_bytes, emptied.allocated_bytes);
  EXPECT_GT(emptied.driver_frees, after.driver_frees);
}

// A block freed while kernels that read it are still queued, then handed out again and
// overwritten, must not change what those kernels read: reuse is ordered on the one stream.
TEST(CudaAllocator, ReuseIsStreamOrdered) {
  SKIP_WITHOUT_CUDA();
  const int64_t n = 1 << 24;
  Tensor total;
  {
    Tensor ones = Tensor::empty({n}, DType::f32, kGpu);
    ops::fill_(ones, 1.0);
    for (int i = 0; i < 20; ++i) ones = ops::add(ones, Tensor::zeros({n}, DType::f32, kGpu));  // queue work
    total = ops::sum(ones);
  }  // `ones` freed here, its sum possibly still queued
  for (int i = 0; i < 4; ++i) {
    Tensor junk = Tensor::empty({n}, DType::f32, kGpu);  // likely the same block
    ops::fill_(junk, 7.0);
  }
  EXPECT_EQ(total.item(), static_cast<double>(n));
}

// ---- copies and conversions -------------------------------------------------------------------------

// Values every dtype holds the same way on both sides: non-negative, integers for integer types,
// fractions for floating ones (truncated alike when converted to integers).
Tensor values_for(Rng& rng, const Shape& s, DType t) {
  std::vector<double> v(static_cast<size_t>(gta::shape_numel(s)));
  for (double& x : v) x = gta::is_floating(t) ? rng.uniform(0, 1000) : static_cast<double>(rng.randint(0, 1000));
  return Tensor::from_doubles(v, s, DType::f64).to(t);
}

TEST(CudaCopy, RoundTripEveryDtype) {
  SKIP_WITHOUT_CUDA();
  Rng rng(fresh_seed());
  for (DType t : {DType::f32, DType::bf16, DType::f64, DType::i32, DType::i64, DType::u16})
    for (int64_t n : {1, 7, 1000, 100003}) {
      Tensor h = values_for(rng, {n}, t);
      Tensor d = h.to(kGpu);
      EXPECT_EQ(d.device(), kGpu);
      EXPECT_EQ(d.to(Device::cpu()).to_doubles(), h.to_doubles()) << gta::dtype_name(t) << " n=" << n;
    }
}

TEST(CudaCopy, StridedEveryDtypePair) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  const std::vector<DType> all = {DType::f32, DType::bf16, DType::f64, DType::i32, DType::i64, DType::u16};
  for (DType s : all)
    for (DType d : all) {
      SCOPED_TRACE(std::string(gta::dtype_name(s)) + " -> " + gta::dtype_name(d));
      // Source: a permuted slice (non-contiguous, offset); destination: contiguous, and a slice.
      Tensor base = values_for(rng, {5, 9, 33, 3}, s);
      Tensor src_h = base.slice(1, 1, 8).permute({2, 0, 3, 1});  // [33, 5, 3, 7]
      Tensor src_d = base.to(kGpu).slice(1, 1, 8).permute({2, 0, 3, 1});
      Tensor want = Tensor::empty(src_h.shape(), d);
      gta::copy_strided(want, src_h);
      Tensor got = Tensor::empty(src_d.shape(), d, kGpu);
      gta::copy_strided(got, src_d);
      EXPECT_EQ(got.to_doubles(), want.to_doubles());
      // Into a non-contiguous destination (every other column of a wider buffer).
      Tensor wide_h = Tensor::zeros({33, 5, 3, 14}, d), wide_d = Tensor::zeros({33, 5, 3, 14}, d, kGpu);
      Tensor dst_h = gta::make_view(wide_h, {33, 5, 3, 7}, {5 * 3 * 14, 3 * 14, 14, 2}, 1);
      Tensor dst_d = gta::make_view(wide_d, {33, 5, 3, 7}, {5 * 3 * 14, 3 * 14, 14, 2}, 1);
      gta::copy_strided(dst_h, src_h);
      gta::copy_strided(dst_d, src_d);
      EXPECT_EQ(wide_d.to_doubles(), wide_h.to_doubles());
      // Contiguous to contiguous, odd length and an unaligned start (the scalar path).
      Tensor flat = values_for(rng, {1001}, s);
      Tensor fd = flat.to(kGpu).slice(0, 1, 1001);
      Tensor ch = flat.slice(0, 1, 1001).to(d), cd = fd.to(d);
      EXPECT_EQ(cd.to_doubles(), ch.to_doubles());
    }
}

TEST(CudaCopy, ToDtypeLargeAndSpecialValues) {
  SKIP_WITHOUT_CUDA();
  Rng rng(fresh_seed());
  Tensor x = randn(rng, {1 << 20 | 3}, DType::f64, 100.0);
  for (DType t : {DType::f32, DType::bf16}) {
    Tensor h = x.to(t), d = x.to(kGpu).to(t);
    EXPECT_EQ(d.to_doubles(), h.to_doubles()) << gta::dtype_name(t);
    EXPECT_EQ(d.to(DType::f32).to_doubles(), h.to(DType::f32).to_doubles());
    EXPECT_EQ(d.to(DType::bf16).to_doubles(), h.to(DType::bf16).to_doubles());
  }
  // Rounding ties, subnormals, infinities, signed zero: f32 -> bf16 as the CPU rounds them.
  std::vector<float> special = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -2.0f - 1.0f / 128, 1e-40f, -1e-40f, 3.4e38f,
                                INFINITY, -INFINITY, -0.0f, 0.0f, 65504.0f, 1.00390625f};
  Tensor sh = Tensor::from_vector(special, {static_cast<int64_t>(special.size())});
  EXPECT_EQ(sh.to(kGpu).to(DType::bf16).to_doubles(), sh.to(DType::bf16).to_doubles());
}

TEST(CudaOps, Cat) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  check_both("cat dim 1", [](const Ts& x) { return ops::cat({x[0], x[1], x[2]}, 1); },
             {rp(rng, {2, 3, 5}), rp(rng, {2, 1, 5}), rp(rng, {2, 33, 5})}, seed);
  check_both("cat dim -1, non-contiguous part",
             [](const Ts& x) { return ops::cat({x[0], x[1].transpose(0, 1)}, -1); },
             {rp(rng, {7, 2}), rp(rng, {129, 7})}, seed);
  check_both("cat dim 0", [](const Ts& x) { return ops::cat({x[0], x[1], x[0]}, 0); },
             {rp(rng, {1, 1000}), rp(rng, {33, 1000})}, seed);
  EXPECT_THROW(ops::cat({Tensor::zeros({2, 3}, DType::f32, kGpu), Tensor::zeros({2, 3}, DType::f32)}, 0), gta::Error);
}

// ---- elementwise --------------------------------------------------------------------------------------

struct BinCase {
  Shape a, b;
  bool transpose_a = false;  // a is given transposed and transposed back inside the graph
};

TEST(CudaOps, BinaryWithBroadcasting) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  const std::vector<BinCase> cases = {
      {{1}, {1}},          {{7}, {7}},           {{1000}, {1000}},        {{33, 129}, {33, 129}},
      {{7, 33}, {33}},     {{7, 1}, {1, 33}},    {{2, 3, 1, 5}, {3, 7, 1}}, {{1}, {129, 7}},
      {{129, 7}, {7}},     {{5, 1, 3}, {4, 1}},  {{4097, 3}, {3}},        {{7, 33}, {7, 33}, true},
      {{1000, 1}, {1000, 129}},
  };
  for (const BinCase& c : cases) {
    const std::string name = shape_str(c.a) + (c.transpose_a ? "^T" : "") + " op " + shape_str(c.b);
    Shape as = c.a;
    if (c.transpose_a) std::reverse(as.begin(), as.end());
    auto A = [t = c.transpose_a](const Tensor& a) { return t ? a.transpose(0, 1) : a; };
    Ts in = {rp(rng, as), rp(rng, c.b)};
    check_both("add " + name, [A](const Ts& x) { return ops::add(A(x[0]), x[1]); }, in, seed);
    check_both("sub " + name, [A](const Ts& x) { return ops::sub(x[1], A(x[0])); }, in, seed);
    // mul with `a` broadcast: a's gradient sums products g*b of random sign, which can cancel to
    // nearly nothing, so its error relative to the result is unbounded; MulGradientOfABroadcastInput
    // checks those sums against the summation error bound instead.
    const bool a_reduced = shape_numel(c.a) < shape_numel(c.b);
    check_both("mul " + name, [A](const Ts& x) { return ops::mul(A(x[0]), x[1]); },
               {in[0].detach().set_requires_grad(!a_reduced), in[1]}, seed);
  }
  // Only one side requires grad, and a constant side.
  Tensor a = rp(rng, {7, 33}), b = randn(rng, {33});
  check_both("mul, constant b", [](const Ts& x) { return ops::mul(x[0], x[1]); }, {a, b}, seed);
  EXPECT_THROW(ops::add(Tensor::zeros({3}, DType::f32, kGpu), Tensor::zeros({3}, DType::f32)), gta::Error);
  EXPECT_THROW(ops::add(Tensor::zeros({3}, DType::f32, kGpu), Tensor::zeros({3}, DType::bf16, kGpu)), gta::Error);
}

// da = sum over the broadcast positions of g * b. The GPU rounds each product to the dtype, then
// sums in fp32 and rounds the result, so |da_gpu - da_exact| <= u (sum |g b| + |da|) with u the
// dtype's unit roundoff (bf16 2^-9; f32 2^-24 times the number of terms, for the fp32 sum), which
// holds however much the sum cancels. Allowed: twice that. A missing or doubled term breaks it.
TEST(CudaOps, MulGradientOfABroadcastInput) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  for (const auto& [as, bs] : std::vector<std::pair<Shape, Shape>>{{{1}, {129, 7}}, {{7, 1}, {7, 33}}, {{1000, 1}, {1000, 129}}}) {
    for (DType dt : {DType::f32, DType::bf16}) {
      SCOPED_TRACE(shape_str(as) + " * " + shape_str(bs) + " " + gta::dtype_name(dt) + " (seed " +
                   std::to_string(seed) + ")");
      Tensor a = rounded(randn(rng, as), dt), b = rounded(randn(rng, bs), dt), g = rounded(randn(rng, bs), dt);
      Tensor ag = a.to(dt).to(kGpu).detach().set_requires_grad(true);
      ops::mul(ag, b.to(dt).to(kGpu)).backward(g.to(dt).to(kGpu));
      const std::vector<double> got = ag.grad().to_doubles(), gv = g.to_doubles(), bv = b.to_doubles();
      const int64_t rows = shape_numel(as), per = shape_numel(bs) / rows;
      const double u = dt == DType::bf16 ? std::ldexp(1.0, -9) : std::ldexp(1.0, -24) * static_cast<double>(per + 2);
      for (int64_t r = 0; r < rows; ++r) {
        double exact = 0, mag = 0;
        for (int64_t j = 0; j < per; ++j) {
          exact += gv[r * per + j] * bv[r * per + j];
          mag += std::abs(gv[r * per + j] * bv[r * per + j]);
        }
        ASSERT_LE(std::abs(got[r] - exact), 2 * u * (mag + std::abs(exact))) << "row " << r << " of " << rows;
      }
    }
  }
}

TEST(CudaOps, UnaryForwardBackward) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  for (const Shape& s : {Shape{1}, Shape{7}, Shape{33, 129}, Shape{1000, 7}, Shape{3, 100003}}) {
    const std::string n = shape_str(s);
    Ts in = {rp(rng, s, 3.0)};
    check_both("scale " + n, [](const Ts& x) { return ops::scale(x[0], -2.5); }, in, seed);
    check_both("silu " + n, [](const Ts& x) { return ops::silu(x[0]); }, in, seed);
    // sigmoid's backward uses the saved output y: in bf16, y near 1 is rounded by up to 2^-9, so
    // the factor 1 - y is off by up to 2^-9 / (1 - y) relative. Long vectors average this out
    // (normwise); one or seven elements do not (measured 2.9e-2 on one element), so they get 5e-2.
    check_graph("sigmoid " + n, [](const Ts& x) { return ops::sigmoid(x[0]); }, in, DType::f32, seed);
    check_graph("sigmoid " + n, [](const Ts& x) { return ops::sigmoid(x[0]); }, in, DType::bf16, seed,
                gta::shape_numel(s) < 100 ? 5e-2 : -1);
    Ts ab = {rp(rng, s, 3.0), rp(rng, s)};
    check_both("swiglu " + n, [](const Ts& x) { return ops::swiglu(x[0], x[1]); }, ab, seed);
  }
  // Non-contiguous inputs, and a chain.
  Ts in = {rp(rng, {129, 33}, 2.0)};
  check_both("silu of a transpose", [](const Ts& x) { return ops::silu(x[0].transpose(0, 1)); }, in, seed);
  check_both("sigmoid of a slice", [](const Ts& x) { return ops::sigmoid(x[0].slice(1, 3, 30)); }, in, seed);
  check_both("chain", [](const Ts& x) { return ops::mul(ops::silu(x[0]), ops::sigmoid(ops::scale(x[0], 0.5))); },
             in, seed);
  // Extremes stay finite, as on the CPU.
  Tensor ext = Tensor::from_doubles({-1000.0, -50.0, 0.0, 50.0, 1000.0}, {5}, DType::f32).to(kGpu);
  EXPECT_TRUE(close(ops::sigmoid(ext), {0.0, 1.9287498479639178e-22, 0.5, 1.0, 1.0}, 1e-30, 1e-6));
  EXPECT_TRUE(close(ops::silu(ext), {-0.0, -9.643749239819589e-21, 0.0, 50.0, 1000.0}, 1e-30, 1e-6));
}

TEST(CudaOps, SumMean) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  // Positive values: the scalar's relative error is not inflated by cancellation.
  for (const Shape& s : {Shape{1}, Shape{7}, Shape{1000}, Shape{129, 33}, Shape{3, 100003}, Shape{5, 1 << 20}}) {
    Tensor x = uniform(rng, s, 0.5, 1.5);
    x.set_requires_grad(true);
    check_both("sum " + shape_str(s), [](const Ts& v) { return ops::sum(v[0]); }, {x}, seed);
    check_both("mean " + shape_str(s), [](const Ts& v) { return ops::mean(v[0]); }, {x}, seed);
  }
  Tensor t = uniform(rng, {33, 7}, 0.5, 1.5);
  t.set_requires_grad(true);
  check_both("sum of a transpose", [](const Ts& v) { return ops::sum(v[0].transpose(0, 1)); }, {t}, seed);
  // f64 on the GPU.
  Tensor big = uniform(rng, {1000003}, -1.0, 1.0);
  EXPECT_NEAR(ops::sum(big.to(kGpu)).item(), ops::sum(big).item(), 1e-9);
}

TEST(CudaOps, SumTo) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  struct Case {
    Shape g, target;
  };
  const std::vector<Case> cases = {
      {{7, 33}, {33}},          {{7, 33}, {7, 1}},       {{5, 7, 33}, {1, 7, 1}},    {{5, 7, 33}, {5, 1, 33}},
      {{2, 3, 4, 5}, {3, 1, 5}}, {{100003, 3}, {3}},     {{3, 100003}, {3, 1}},      {{4097, 129}, {129}},
      {{1000, 1}, {1}},         {{1, 1000}, {1000}},     {{129, 1, 7}, {1, 7}},      {{9, 1, 7, 1000}, {1, 1}},
      {{8, 2048, 3}, {2048, 1}},
  };
  for (const Case& c : cases) {
    Tensor g = randn(rng, c.g);
    Tensor want = ops::sum_to(g, c.target);
    for (DType t : {DType::f32, DType::bf16, DType::f64}) {
      Tensor gr = rounded(g, t);
      Tensor w = ops::sum_to(gr, c.target);
      Tensor got = ops::sum_to(gr.to(t).to(kGpu), c.target);
      EXPECT_EQ(got.shape(), c.target);
      EXPECT_EQ(got.device(), kGpu);
      EXPECT_LE(normwise(got.to_doubles(), w.to_doubles()), tolerance(t))
          << shape_str(c.g) << " -> " << shape_str(c.target) << " " << gta::dtype_name(t);
    }
    (void)want;
  }
  // From a non-contiguous gradient.
  Tensor gt = randn(rng, {33, 7});
  Tensor w = ops::sum_to(gt.transpose(0, 1), {33});
  Tensor got = ops::sum_to(gt.to(DType::f32).to(kGpu).transpose(0, 1), {33});
  EXPECT_LE(normwise(got.to_doubles(), w.to_doubles()), 1e-5);
}

TEST(CudaOps, InPlace) {
  SKIP_WITHOUT_CUDA();
  Rng rng(fresh_seed());
  for (DType t : {DType::f32, DType::bf16}) {
    Tensor d = rounded(randn(rng, {33, 129}), t), s = rounded(randn(rng, {129, 33}), t);
    Tensor dd = d.to(t).to(kGpu), sd = s.to(t).to(kGpu);
    ops::add_(dd, sd.transpose(0, 1));
    Tensor want = ops::add(d, s.transpose(0, 1));
    EXPECT_LE(normwise(dd.to_doubles(), want.to_doubles()), tolerance(t));
  }
  for (DType t : {DType::f32, DType::bf16, DType::f64, DType::i32, DType::i64, DType::u16})
    for (double v : {0.0, 2.5, 7.0, 1.0 / 3.0}) {
      Tensor h = Tensor::empty({1001}, t), d = Tensor::empty({1001}, t, kGpu);
      ops::fill_(h, v);
      ops::fill_(d, v);
      EXPECT_EQ(d.to_doubles(), h.to_doubles()) << gta::dtype_name(t) << " " << v;
    }
  EXPECT_THROW(ops::add_(Tensor::zeros({3}, DType::f32, kGpu), Tensor::zeros({4}, DType::f32, kGpu)), gta::Error);
}

// ---- linear algebra ---------------------------------------------------------------------------------

TEST(CudaOps, Linear) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  struct Case {
    Shape x;
    int64_t out;
  };
  for (const Case& c : {Case{{1, 1}, 1}, Case{{7, 33}, 129}, Case{{33, 129}, 7}, Case{{129, 1000}, 33},
                        Case{{3, 5, 33}, 1000}, Case{{2, 7, 3, 64}, 96}}) {
    const int64_t in = c.x.back();
    const std::string n = shape_str(c.x) + " x [" + std::to_string(c.out) + ", " + std::to_string(in) + "]";
    const double sx = 1.0, sw = 1.0 / std::sqrt(static_cast<double>(in));
    check_both("linear+bias " + n, [](const Ts& v) { return ops::linear(v[0], v[1], v[2]); },
               {rp(rng, c.x, sx), rp(rng, {c.out, in}, sw), rp(rng, {c.out})}, seed);
    check_both("linear " + n, [](const Ts& v) { return ops::linear(v[0], v[1]); },
               {rp(rng, c.x, sx), rp(rng, {c.out, in}, sw)}, seed);
  }
  // Transposed weight view (tied weights), non-contiguous input, only some inputs with grad.
  check_both("linear x^T, W view of [in, out]",
             [](const Ts& v) { return ops::linear(v[0].transpose(0, 1), v[1].transpose(0, 1), v[2]); },
             {rp(rng, {33, 129}), rp(rng, {33, 7}, 0.2), rp(rng, {7})}, seed);
  check_both("linear, grad for the bias only", [](const Ts& v) { return ops::linear(v[0], v[1], v[2]); },
             {randn(rng, {129, 33}), randn(rng, {7, 33}), rp(rng, {7})}, seed);
  check_both("linear, grad for x only", [](const Ts& v) { return ops::linear(v[0], v[1], v[2]); },
             {rp(rng, {129, 33}), randn(rng, {7, 33}), randn(rng, {7})}, seed);
  // f64 on the GPU.
  check_graph("linear+bias f64", [](const Ts& v) { return ops::linear(v[0], v[1], v[2]); },
              {rp(rng, {129, 33}), rp(rng, {7, 33}), rp(rng, {7})}, DType::f64, seed);
}

TEST(CudaOps, Matmul) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  auto mm = [](const Ts& v) { return ops::matmul(v[0], v[1]); };
  check_both("matmul batched [3,7,33]@[3,33,5]", mm, {rp(rng, {3, 7, 33}), rp(rng, {3, 33, 5})}, seed);
  check_both("matmul batched 4-d", mm, {rp(rng, {2, 3, 33, 129}), rp(rng, {2, 3, 129, 7})}, seed);
  check_both("matmul 2-d", mm, {rp(rng, {1, 1000}), rp(rng, {1000, 1})}, seed);
  check_both("matmul shared B", mm, {rp(rng, {4, 7, 33}), rp(rng, {33, 129})}, seed);
  check_both("matmul shared B from a transpose", [](const Ts& v) { return ops::matmul(v[0], v[1].transpose(0, 1)); },
             {rp(rng, {5, 33, 129}), rp(rng, {7, 129})}, seed);
  // q @ k^T style: the transposed operand is read in place.
  check_both("matmul a @ b^T", [](const Ts& v) { return ops::matmul(v[0], v[1].transpose(-1, -2)); },
             {rp(rng, {2, 3, 33, 64}), rp(rng, {2, 3, 129, 64})}, seed);
  // Batch dims that do not collapse (a permuted batch): copied, still right.
  check_both("matmul permuted batch",
             [](const Ts& v) { return ops::matmul(v[0].permute({1, 0, 2, 3}), v[1]); },
             {rp(rng, {3, 2, 7, 33}), rp(rng, {2, 3, 33, 5})}, seed);
  check_graph("matmul f64", mm, {rp(rng, {3, 7, 33}), rp(rng, {3, 33, 5})}, DType::f64, seed);
}

// The same inputs give the same bits: fixed GEMM algorithms, fixed reduction order.
TEST(CudaOps, Deterministic) {
  SKIP_WITHOUT_CUDA();
  Rng rng(fresh_seed());
  Tensor x0 = randn(rng, {1000, 129}, DType::bf16).to(kGpu), w0 = randn(rng, {333, 129}, DType::bf16).to(kGpu);
  Tensor b0 = randn(rng, {333}, DType::bf16).to(kGpu), g0 = randn(rng, {1000, 333}, DType::bf16).to(kGpu);
  auto run = [&] {
    Tensor x = x0.detach(), w = w0.detach(), b = b0.detach();
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    b.set_requires_grad(true);
    Tensor y = ops::linear(x, w, b);
    y.backward(g0);
    return std::vector<std::vector<double>>{y.to_doubles(), x.grad().to_doubles(), w.grad().to_doubles(),
                                            b.grad().to_doubles(), ops::sum(y).to_doubles()};
  };
  const auto first = run();
#ifdef GTA_WITH_CUDA
  const int64_t plans = gta::kernels::gemm_plan_count();
#endif
  for (int rep = 0; rep < 3; ++rep) EXPECT_EQ(run(), first) << "repeat " << rep;
#ifdef GTA_WITH_CUDA
  EXPECT_EQ(gta::kernels::gemm_plan_count(), plans) << "a repeated shape reuses its cached plan";
#endif
}

// TF32 is an explicit option: off, f32 GEMMs match fp64 to ~1e-6; on, to TF32's ~1e-3.
TEST(CudaOps, Tf32Option) {
  SKIP_WITHOUT_CUDA();
  Rng rng(fresh_seed());
  Tensor x = randn(rng, {257, 1000}), w = randn(rng, {129, 1000});
  Tensor want = ops::linear(rounded(x, DType::f32), rounded(w, DType::f32));
  Tensor xd = x.to(DType::f32).to(kGpu), wd = w.to(DType::f32).to(kGpu);
  ASSERT_FALSE(cuda::allow_tf32());
  const double exact = normwise(ops::linear(xd, wd).to_doubles(), want.to_doubles());
  cuda::set_allow_tf32(true);
  const double tf32 = normwise(ops::linear(xd, wd).to_doubles(), want.to_doubles());
  cuda::set_allow_tf32(false);
  std::printf("f32 GEMM normwise error: exact %.3g, tf32 %.3g\n", exact, tf32);
  EXPECT_LE(exact, 1e-5);
  EXPECT_LE(tf32, 5e-3);
  EXPECT_GT(tf32, exact) << "TF32 should be less exact than fp32";
}

// A small network: every op above in one graph, compared end to end.
TEST(CudaOps, SmallNetwork) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  auto net = [](const Ts& v) {
    Tensor h = ops::silu(ops::linear(v[0], v[1], v[2]));                // [B, T, 129]
    Tensor gate = ops::sigmoid(ops::linear(v[0], v[3]));                // [B, T, 129]
    Tensor z = ops::cat({ops::mul(h, gate), ops::scale(v[0], 0.5)}, -1);  // [B, T, 129 + 33]
    Tensor o = ops::matmul(z, v[4]);                                    // [B, T, 7]
    return ops::mean(ops::mul(ops::sub(o, v[5]), ops::sub(o, v[5])));
  };
  check_both("network", net,
             {rp(rng, {3, 17, 33}), rp(rng, {129, 33}, 0.2), rp(rng, {129}), rp(rng, {129, 33}, 0.2),
              rp(rng, {162, 7}, 0.1), randn(rng, {7})},
             seed);
}

// ---- benchmark (GTA_BENCH=1; N from GTA_BENCH_N, default 8192) ----------------------------------------

TEST(CudaBench, LinearBf16) {
  SKIP_WITHOUT_CUDA();
  if (!std::getenv("GTA_BENCH")) GTEST_SKIP() << "set GTA_BENCH=1 to run";
  const int64_t n = std::getenv("GTA_BENCH_N") ? std::atoll(std::getenv("GTA_BENCH_N")) : 8192;
  Rng rng(fresh_seed());
  auto rand_gpu = [&](const Shape& s) {
    std::vector<float> v(static_cast<size_t>(gta::shape_numel(s)));
    for (float& e : v) e = static_cast<float>(rng.uniform(-1, 1));
    return Tensor::from_vector(v, s).to(kGpu).to(DType::bf16);
  };
  Tensor x = rand_gpu({n, n}), w = rand_gpu({n, n}), g = rand_gpu({n, n});
  const double flop = 2.0 * n * n * n;
  auto time_ms = [&](const std::function<void()>& f, int reps) {
    for (int i = 0; i < 3; ++i) f();  // warm-up: plans, allocator
    std::vector<float> ms;
    for (int trial = 0; trial < 7; ++trial) {
      cuda::StreamTimer t;
      t.start();
      for (int i = 0; i < reps; ++i) f();
      t.stop();
      ms.push_back(t.elapsed_ms() / reps);
    }
    std::sort(ms.begin(), ms.end());
    return static_cast<double>(ms[ms.size() / 2]);
  };
  double fwd = 0;
  {
    gta::autograd::NoGradGuard no_grad;
    fwd = time_ms([&] { ops::linear(x, w); }, 20);
  }
  // Forward and backward through autograd: y = x W^T, dx = g W, dW = g^T x (three GEMMs; the
  // leaves' first gradient is also copied once, n^2 elements, small next to them).
  Tensor xg = x.detach(), wg = w.detach();
  xg.set_requires_grad(true);
  wg.set_requires_grad(true);
  const double step = time_ms(
      [&] {
        Tensor y = ops::linear(xg, wg);
        y.backward(g);
        xg.zero_grad();
        wg.zero_grad();
      },
      10);
  const cuda::MemoryStats mem = cuda::memory_stats(0);
  std::printf("GTA_BENCH linear bf16 n=%lld fwd %.4f ms %.1f TFLOP/s | fwd+bwd %.4f ms %.1f TFLOP/s | peak %.2f GiB\n",
              static_cast<long long>(n), fwd, flop / fwd / 1e9, step, 3 * flop / step / 1e9,
              mem.peak_allocated_bytes / double(1 << 30));
}

}  // namespace
