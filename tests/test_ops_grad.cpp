// Gradient checks: every op's backward against central finite differences, in f64, on odd sizes
// (tests/gradcheck.h), plus f32 runs of a few ops against the same inputs in f64.
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/tape.h"
#include "core/error.h"
#include "gradcheck.h"
#include "ops/ops.h"

namespace {

using namespace gta_test;  // DType, Shape, Tensor, Rng, randn, gradcheck, ...
namespace ops = gta::ops;
using Ts = std::vector<Tensor>;

// ---- the harness itself must be able to fail ----------------------------------------------------

// y = x * x with a backward chosen by the test.
Tensor square_with_backward(const Tensor& x, double factor, int64_t bad_element) {
  Tensor out;
  {
    gta::autograd::NoGradGuard ng;
    out = ops::mul(x, x);
  }
  Tensor xd = x.detach();
  gta::autograd::record(out, "test_square", {x}, [xd, factor, bad_element](const Tensor& g) -> Ts {
    Tensor dx = ops::scale(ops::mul(g, xd), factor).contiguous().clone();
    if (bad_element >= 0) dx.data<double>()[bad_element] *= 1.0 + 1e-4;
    return {dx};
  });
  return out;
}

TEST(GradCheckHarness, AcceptsCorrectGradient) {
  Rng rng(100);
  auto r = gradcheck([](const Ts& x) { return square_with_backward(x[0], 2.0, -1); }, {randn_param(rng, {3, 5})});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.n_checked, 15);
  EXPECT_LT(r.max_err, 1e-8);
}

TEST(GradCheckHarness, DetectsWrongGradient) {
  Rng rng(101);
  auto r = gradcheck([](const Ts& x) { return square_with_backward(x[0], 1.0, -1); }, {randn_param(rng, {3, 5})});
  EXPECT_FALSE(r.ok);
  EXPECT_GT(r.max_err, 0.1);
  EXPECT_EQ(r.input, 0);
}

TEST(GradCheckHarness, NamesTheWrongElement) {
  Rng rng(102);
  Tensor c = randn(rng, {3, 5});  // a constant first input: the checked one is input 1
  Tensor x = uniform(rng, {3, 5}, 1.0, 2.0);  // |x| >= 1 so the 1e-4 relative error shows
  x.set_requires_grad(true);
  auto r = gradcheck([](const Ts& v) { return ops::add(square_with_backward(v[1], 2.0, 7), v[0]); }, {c, x});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.input, 1);
  EXPECT_EQ(r.element, 7);
  EXPECT_NE(r.message.find("[1, 2]"), std::string::npos) << r.message;
}

TEST(GradCheckHarness, DetectsUnrecordedOp) {
  Rng rng(103);
  auto r = gradcheck([](const Ts& x) { return x[0].detach(); }, {randn_param(rng, {3})});
  EXPECT_FALSE(r.ok);
}

TEST(GradCheckHarness, RngIsDeterministicAndNormal) {
  Rng a(7), b(7), c(8);
  EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(a.next_u64(), c.next_u64());
  Rng r(9);
  double s = 0, s2 = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    double v = r.normal();
    s += v;
    s2 += v * v;
  }
  EXPECT_NEAR(s / n, 0.0, 0.05);
  EXPECT_NEAR(s2 / n, 1.0, 0.05);
}

// ---- elementwise ----------------------------------------------------------------------------------

TEST(GradCheck, Add) {
  Rng rng(1);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::add(x[0], x[1]); }, {randn_param(rng, {3, 5}), randn_param(rng, {3, 5})});
}

TEST(GradCheck, AddBroadcast) {
  Rng rng(2);
  auto f = [](const Ts& x) { return ops::add(x[0], x[1]); };
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 1, 5}), randn_param(rng, {4, 1})});
  EXPECT_GRADCHECK(f, {randn_param(rng, {5}), randn_param(rng, {3, 5})});
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 7}), randn_param(rng, {1})});
  EXPECT_GRADCHECK(f, {randn_param(rng, {2, 3, 1}), randn_param(rng, {1, 3, 5})});
}

TEST(GradCheck, Mul) {
  Rng rng(3);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::mul(x[0], x[1]); }, {randn_param(rng, {3, 5}), randn_param(rng, {3, 5})});
  // The same tensor on both sides: d(x*x)/dx = 2x, both contributions summed.
  EXPECT_GRADCHECK([](const Ts& x) { return ops::mul(x[0], x[0]); }, {randn_param(rng, {7})});
}

TEST(GradCheck, MulBroadcast) {
  Rng rng(4);
  auto f = [](const Ts& x) { return ops::mul(x[0], x[1]); };
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 1, 5}), randn_param(rng, {4, 1})});
  EXPECT_GRADCHECK(f, {randn_param(rng, {2, 3, 5}), randn_param(rng, {5})});
  EXPECT_GRADCHECK(f, {randn_param(rng, {1}), randn_param(rng, {3, 5})});
  // Only one side requires grad: the other is a constant and must get no gradient.
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 5}), randn(rng, {5})});
  EXPECT_GRADCHECK(f, {randn(rng, {3, 1}), randn_param(rng, {3, 5})});
}

TEST(GradCheck, Sub) {
  Rng rng(5);
  auto f = [](const Ts& x) { return ops::sub(x[0], x[1]); };
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 5}), randn_param(rng, {3, 5})});
  EXPECT_GRADCHECK(f, {randn_param(rng, {7}), randn_param(rng, {3, 7})});
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 1, 5}), randn_param(rng, {4, 1})});
}

TEST(GradCheck, Scale) {
  Rng rng(6);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::scale(x[0], -1.7); }, {randn_param(rng, {3, 5})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::scale(ops::mul(x[0], x[0]), 0.3); }, {randn_param(rng, {13})});
}

TEST(GradCheck, Silu) {
  Rng rng(7);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::silu(x[0]); }, {randn_param(rng, {3, 5, 7}, 3.0)});
}

TEST(GradCheck, Swiglu) {
  Rng rng(17);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::swiglu(x[0], x[1]); },
                   {randn_param(rng, {3, 5, 7}, 3.0), randn_param(rng, {3, 5, 7})});
  // Equals silu(a) * b, the unfused form it replaces.
  Tensor a = randn_param(rng, {4, 9}, 2.0), b = randn_param(rng, {4, 9});
  const auto fused = ops::swiglu(a, b).to_doubles(), plain = ops::mul(ops::silu(a), b).to_doubles();
  for (size_t i = 0; i < fused.size(); ++i) EXPECT_NEAR(fused[i], plain[i], 1e-12 * (1 + std::abs(plain[i])));
}

TEST(GradCheck, Sigmoid) {
  Rng rng(8);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::sigmoid(x[0]); }, {randn_param(rng, {3, 5, 7}, 3.0)});
}

// ---- reductions -----------------------------------------------------------------------------------

TEST(GradCheck, Sum) {
  Rng rng(9);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::sum(x[0]); }, {randn_param(rng, {3, 5, 7})});
  // Through a nonlinearity, so the gradient is not just a constant.
  EXPECT_GRADCHECK([](const Ts& x) { return ops::sum(ops::mul(x[0], x[0])); }, {randn_param(rng, {13})});
}

TEST(GradCheck, Mean) {
  Rng rng(10);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::mean(x[0]); }, {randn_param(rng, {3, 5, 7})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::mean(ops::silu(x[0])); }, {randn_param(rng, {5, 3})});
}

// ---- linear algebra ---------------------------------------------------------------------------------

TEST(GradCheck, Linear) {
  Rng rng(11);
  auto f = [](const Ts& x) { return ops::linear(x[0], x[1]); };
  EXPECT_GRADCHECK(f, {randn_param(rng, {2, 3, 5}), randn_param(rng, {7, 5})});
  EXPECT_GRADCHECK(f, {randn_param(rng, {13, 3}), randn_param(rng, {5, 3})});
  // Gradient for the weight only (a frozen input).
  EXPECT_GRADCHECK(f, {randn(rng, {3, 5}), randn_param(rng, {7, 5})});
}

TEST(GradCheck, LinearBias) {
  Rng rng(12);
  auto f = [](const Ts& x) { return ops::linear(x[0], x[1], x[2]); };
  EXPECT_GRADCHECK(f, {randn_param(rng, {2, 3, 5}), randn_param(rng, {7, 5}), randn_param(rng, {7})});
  // Many rows, so the bias reduction spans several blocks.
  EXPECT_GRADCHECK(f, {randn_param(rng, {131, 3}), randn_param(rng, {2, 3}), randn_param(rng, {2})});
  // A frozen weight.
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 5}), randn(rng, {7, 5}), randn_param(rng, {7})});
}

TEST(GradCheck, Matmul) {
  Rng rng(13);
  auto f = [](const Ts& x) { return ops::matmul(x[0], x[1]); };
  EXPECT_GRADCHECK(f, {randn_param(rng, {5, 3}), randn_param(rng, {3, 7})});
  // Transposed (non-contiguous) operands.
  EXPECT_GRADCHECK([](const Ts& x) { return ops::matmul(x[0].transpose(0, 1), x[1].transpose(0, 1)); },
                   {randn_param(rng, {3, 5}), randn_param(rng, {7, 3})});
}

TEST(GradCheck, MatmulBatched) {
  Rng rng(14);
  auto f = [](const Ts& x) { return ops::matmul(x[0], x[1]); };
  EXPECT_GRADCHECK(f, {randn_param(rng, {2, 3, 5, 4}), randn_param(rng, {2, 3, 4, 7})});
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 1, 5}), randn_param(rng, {3, 5, 3})});
}

TEST(GradCheck, MatmulBroadcastB) {
  Rng rng(15);
  auto f = [](const Ts& x) { return ops::matmul(x[0], x[1]); };
  EXPECT_GRADCHECK(f, {randn_param(rng, {2, 5, 4}), randn_param(rng, {4, 7})});
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 2, 5, 3}), randn_param(rng, {3, 5})});
}

// ---- joins ------------------------------------------------------------------------------------------

TEST(GradCheck, Cat) {
  Rng rng(16);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::cat({x[0], x[1], x[2]}, 1); },
                   {randn_param(rng, {2, 3, 5}), randn_param(rng, {2, 1, 5}), randn_param(rng, {2, 4, 5})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::cat({x[0], x[1]}, 0); },
                   {randn_param(rng, {3, 5}), randn_param(rng, {1, 5})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::cat({x[0], x[1], x[0]}, -1); },  // x[0] used twice
                   {randn_param(rng, {3, 2}), randn_param(rng, {3, 5})});
  // A constant among the parts.
  EXPECT_GRADCHECK([](const Ts& x) { return ops::cat({x[0], x[1]}, 2); },
                   {randn(rng, {2, 3, 1}), randn_param(rng, {2, 3, 3})});
}

// ---- model ops --------------------------------------------------------------------------------------

TEST(GradCheck, Embedding) {
  Rng rng(17);
  // Ids repeat, so rows of the weight gradient collect several contributions; row 4 and 6 unused.
  std::vector<int64_t> ids = {0, 3, 3, 1, 5, 3, 0, 2, 2, 5, 1, 3, 0, 5, 3};
  Tensor ids64 = Tensor::from_vector(ids, {3, 5});
  auto f = [](const Ts& x) { return ops::embedding(x[0], x[1]); };
  EXPECT_GRADCHECK(f, {randn_param(rng, {7, 5}), ids64});
  EXPECT_GRADCHECK(f, {randn_param(rng, {7, 3}), ids64.to(DType::i32)});
  EXPECT_GRADCHECK(f, {randn_param(rng, {7, 3}), Tensor::from_vector(std::vector<int64_t>{6, 6, 6}, {3})});
}

TEST(GradCheck, RmsNorm) {
  Rng rng(18);
  auto f = [](const Ts& x) { return ops::rms_norm(x[0], x[1], 1e-5); };
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 5, 7}), randn_param(rng, {7})});
  // Small inputs, where eps matters.
  EXPECT_GRADCHECK([](const Ts& x) { return ops::rms_norm(x[0], x[1], 1e-3); },
                   {randn_param(rng, {5, 13}, 0.03), randn_param(rng, {13})});
  // Frozen weight.
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 7}), randn(rng, {7})});
}

// add_rms_norm returns {h, y}: checked through cat({h, y}), so each output gets its own random
// weight in the loss, and through each output alone (the other's gradient never arrives).
TEST(GradCheck, AddRmsNorm) {
  Rng rng(41);
  auto both = [](double eps) {
    return [eps](const Ts& x) {
      auto [h, y] = ops::add_rms_norm(x[0], x[1], x[2], eps);
      return ops::cat({h, y}, -1);
    };
  };
  EXPECT_GRADCHECK(both(1e-5), {randn_param(rng, {3, 5, 7}), randn_param(rng, {3, 5, 7}), randn_param(rng, {7})});
  // Small inputs, where eps matters.
  EXPECT_GRADCHECK(both(1e-3),
                   {randn_param(rng, {5, 13}, 0.03), randn_param(rng, {5, 13}, 0.03), randn_param(rng, {13})});
  // Frozen weight; a residual that needs no gradient.
  EXPECT_GRADCHECK(both(1e-5), {randn_param(rng, {4, 7}), randn(rng, {4, 7}), randn(rng, {7})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::add_rms_norm(x[0], x[1], x[2], 1e-5).second; },
                   {randn_param(rng, {3, 9}), randn_param(rng, {3, 9}), randn_param(rng, {9})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::add_rms_norm(x[0], x[1], x[2], 1e-5).first; },
                   {randn_param(rng, {3, 9}), randn_param(rng, {3, 9}), randn(rng, {9})});
  // The decoder's pattern: h is the residual of the next fused op, y feeds the branch added there,
  // and only the last norm is used; the two norms share a weight, so its gradients accumulate.
  EXPECT_GRADCHECK(
      [](const Ts& x) {
        auto [h1, y1] = ops::add_rms_norm(x[0], x[1], x[2], 1e-5);
        return ops::add_rms_norm(h1, ops::silu(ops::linear(y1, x[3])), x[2], 1e-5).second;
      },
      {randn_param(rng, {2, 3, 6}), randn_param(rng, {2, 3, 6}), randn_param(rng, {6}), randn_param(rng, {6, 6})});
}

// The fused op against add then rms_norm on the CPU: the same values forward (the same loops, so
// bit for bit) and the same gradients to rounding (dh is one sum either way; only where it is formed
// differs).
TEST(GradCheck, AddRmsNormMatchesAddThenRmsNorm) {
  Rng rng(42);
  for (DType dt : {DType::f64, DType::f32})
    for (const Shape& shape : {Shape{3, 5, 7}, Shape{1, 1}, Shape{67, 513}}) {
      SCOPED_TRACE(std::string(gta::dtype_name(dt)) + " " + gta::shape_str(shape));
      const Tensor x = randn(rng, shape, dt), r = randn(rng, shape, dt), w = randn(rng, {shape.back()}, dt);
      Shape both_shape = shape;
      both_shape.back() *= 2;
      const Tensor g = randn(rng, both_shape, dt);  // the gradient of cat({h, y})
      // {h, y, dx, dr, dw} from fresh leaves, fused or not.
      auto run = [&](bool fused) {
        Tensor xl = param(x.clone()), rl = param(r.clone()), wl = param(w.clone());
        Tensor h, y;
        if (fused) {
          std::tie(h, y) = ops::add_rms_norm(xl, rl, wl, 1e-5);
        } else {
          h = ops::add(xl, rl);
          y = ops::rms_norm(h, wl, 1e-5);
        }
        ops::cat({h, y}, -1).backward(g);
        return std::vector<Tensor>{h, y, xl.grad(), rl.grad(), wl.grad()};
      };
      const std::vector<Tensor> got = run(true), want = run(false);
      EXPECT_EQ(got[0].to_doubles(), want[0].to_doubles()) << "h";
      EXPECT_EQ(got[1].to_doubles(), want[1].to_doubles()) << "y";
      const double tol = dt == DType::f64 ? 1e-14 : 1e-6;
      const char* names[] = {"dx", "dr", "dw"};
      for (int i = 0; i < 3; ++i) EXPECT_TRUE(close(got[2 + i], want[2 + i], tol, tol)) << names[i];
    }
}

TEST(GradCheck, Rope) {
  Rng rng(19);
  // Odd T, rotation on part of each head, positions starting at 5.
  EXPECT_GRADCHECK([](const Ts& x) { return ops::rope(x[0], 6, 10000.0, 5); }, {randn_param(rng, {2, 7, 3, 8})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::rope(x[0], 4, 100.0, 0); }, {randn_param(rng, {1, 5, 1, 4})});
  // Through a nonlinearity, so the check is not only of a linear map's transpose.
  EXPECT_GRADCHECK([](const Ts& x) { return ops::silu(ops::rope(x[0], 2, 500000.0, 11)); },
                   {randn_param(rng, {1, 3, 2, 5})});
}

TEST(GradCheck, Softmax) {
  Rng rng(20);
  auto f = [](const Ts& x) { return ops::softmax(x[0]); };
  EXPECT_GRADCHECK(f, {randn_param(rng, {3, 5, 7}, 2.0)});
  EXPECT_GRADCHECK(f, {randn_param(rng, {13})});
  // Non-contiguous input: softmax over what was dim 0.
  EXPECT_GRADCHECK([](const Ts& x) { return ops::softmax(x[0].transpose(0, 1)); }, {randn_param(rng, {5, 3})});
}

struct AttnCase {
  int64_t B, T, S, n_q, n_k, n_v, d_qk, d_v;
};

void check_attention(const AttnCase& c, uint64_t seed, double scale = -1) {
  Rng rng(seed);
  const double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(c.d_qk));
  Tensor q = randn_param(rng, {c.B, c.T, c.n_q, c.d_qk});
  Tensor k = randn_param(rng, {c.B, c.S, c.n_k, c.d_qk});
  Tensor v = randn_param(rng, {c.B, c.S, c.n_v, c.d_v});
  auto r = gradcheck([s](const Ts& x) { return ops::attention(x[0], x[1], x[2], s); }, {q, k, v});
  EXPECT_TRUE(r.ok) << "B=" << c.B << " T=" << c.T << " S=" << c.S << " n_q=" << c.n_q << " n_k=" << c.n_k
                    << " n_v=" << c.n_v << " d_qk=" << c.d_qk << " d_v=" << c.d_v << ": " << r.message;
}

TEST(GradCheck, Attention) {
  // (n_q, n_k, n_v, d_qk, d_v) from the brief, T odd, full (T == S) and decode (T < S) forms.
  check_attention({2, 7, 7, 4, 1, 1, 5, 7}, 21);
  check_attention({2, 7, 7, 6, 3, 2, 4, 4}, 22);
  check_attention({2, 7, 7, 3, 3, 3, 6, 2}, 23);
  check_attention({1, 3, 7, 4, 1, 1, 5, 7}, 24);   // decode with a 4-token cache
  check_attention({2, 1, 5, 6, 3, 2, 4, 4}, 25);   // one new token
  check_attention({1, 5, 5, 6, 2, 6, 3, 5}, 26);   // n_v == n_q, n_k shared
  check_attention({1, 5, 5, 2, 2, 1, 3, 3}, 27, 0.9);  // a scale other than 1/sqrt(d_qk)
}

TEST(GradCheck, CrossEntropy) {
  Rng rng(28);
  std::vector<int64_t> t = {3, 0, 12, -1, 7, 3, -1};
  Tensor targets = Tensor::from_vector(t, {7});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::cross_entropy(x[0], x[1]); }, {randn_param(rng, {7, 13}, 2.0), targets});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::cross_entropy(x[0], x[1]); },
                   {randn_param(rng, {7, 13}, 2.0), targets.to(DType::i32)});
  // A custom ignore index (5 is skipped, -1 is not used here), nothing ignored, and a single row.
  Tensor t2 = Tensor::from_vector(std::vector<int64_t>{5, 1, 5, 4, 0}, {5});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::cross_entropy(x[0], x[1], 5); }, {randn_param(rng, {5, 7}), t2});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::cross_entropy(x[0], x[1], -100); }, {randn_param(rng, {5, 7}), t2});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::cross_entropy(x[0], x[1]); },
                   {randn_param(rng, {1, 3}), Tensor::from_vector(std::vector<int64_t>{2}, {1})});
}

// ---- views and copies (gradients flow through them) -------------------------------------------------

TEST(GradCheck, Reshape) {
  Rng rng(29);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::silu(x[0].reshape({5, -1})); }, {randn_param(rng, {3, 5, 7})});
  // Reshape of a non-contiguous view (a copy).
  EXPECT_GRADCHECK([](const Ts& x) { return ops::mul(x[0].transpose(0, 1).reshape({15}), x[1]); },
                   {randn_param(rng, {3, 5}), randn_param(rng, {15})});
}

TEST(GradCheck, Permute) {
  Rng rng(30);
  EXPECT_GRADCHECK([](const Ts& x) { return x[0].permute({2, 0, 1}); }, {randn_param(rng, {3, 5, 7})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::mul(x[0].permute({1, 2, 0}), x[1]); },
                   {randn_param(rng, {3, 5, 7}), randn_param(rng, {5, 7, 3})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::linear(x[0].permute({1, 0, 2}), x[1].transpose(0, 1)); },
                   {randn_param(rng, {3, 2, 5}), randn_param(rng, {5, 7})});
}

TEST(GradCheck, Slice) {
  Rng rng(31);
  // Two overlapping slices of one tensor: contributions add.
  EXPECT_GRADCHECK([](const Ts& x) { return ops::mul(x[0].slice(0, 1, 4), x[0].slice(0, 3, 6)); },
                   {randn_param(rng, {7, 5})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::silu(x[0].slice(-1, 2, 5)); }, {randn_param(rng, {3, 7})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::sigmoid(x[0].slice(1, 1, 2).slice(0, 0, 2)); },
                   {randn_param(rng, {3, 5, 2})});
}

TEST(GradCheck, Expand) {
  Rng rng(32);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::silu(x[0].expand({2, 3, 4, 5})); }, {randn_param(rng, {3, 1, 5})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::mul(x[0].expand({3, 5}), x[1]); },
                   {randn_param(rng, {5}), randn_param(rng, {3, 5})});
}

TEST(GradCheck, Contiguous) {
  Rng rng(33);
  EXPECT_GRADCHECK([](const Ts& x) { return ops::silu(x[0].permute({2, 0, 1}).contiguous()); },
                   {randn_param(rng, {3, 5, 7})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::silu(x[0].contiguous()); }, {randn_param(rng, {5})});
  EXPECT_GRADCHECK([](const Ts& x) { return ops::sigmoid(x[0].clone()); }, {randn_param(rng, {3, 5})});
}

TEST(GradCheck, ToDtype) {
  Rng rng(34);
  // Same dtype: identity.
  EXPECT_GRADCHECK([](const Ts& x) { return ops::silu(x[0].to(DType::f64)); }, {randn_param(rng, {5})});
  // f64 -> f32 -> f64: the numeric side sees f32 rounding, so a wider step and tolerance.
  EXPECT_GRADCHECK([](const Ts& x) { return ops::mul(x[0].to(DType::f32).to(DType::f64), x[0]); },
                   {randn_param(rng, {3, 5})}, 1e-2, 1e-4);
  // Exactly: d sum(x.to(f32) * r) / dx = r, delivered in f64.
  Tensor x = randn_param(rng, {3, 5});
  Tensor r = randn(rng, {3, 5}, DType::f32);
  Tensor y = x.to(DType::f32);
  ASSERT_EQ(y.dtype(), DType::f32);
  ASSERT_TRUE(y.requires_grad());
  ops::sum(ops::mul(y, r)).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().dtype(), DType::f64);
  EXPECT_TRUE(close(x.grad(), r.to_doubles(), 0.0));
  // bf16 in the middle: gradients still reach the f64 leaf.
  Tensor x2 = randn_param(rng, {4});
  ops::sum(x2.to(DType::bf16).to(DType::f32)).backward();
  ASSERT_TRUE(x2.grad().defined());
  EXPECT_TRUE(close(x2.grad(), std::vector<double>(4, 1.0), 0.0));
}

// ---- f32 against f64 ---------------------------------------------------------------------------------

struct Run {
  std::vector<double> out;
  std::vector<std::vector<double>> grads;
};

// Runs fn on copies of `inputs` converted to `dtype` (floating inputs that require grad become
// leaves), backward with seed r, and returns the output and input gradients as doubles.
Run run_in(DType dtype, const GradFn& fn, const Ts& inputs, const Tensor& r) {
  Ts xs;
  for (const Tensor& x : inputs) {
    if (!gta::is_floating(x.dtype())) {
      xs.push_back(x);
      continue;
    }
    Tensor c = x.detach().to(dtype).clone();
    if (x.requires_grad()) c.set_requires_grad(true);
    xs.push_back(c);
  }
  Tensor out = fn(xs);
  EXPECT_EQ(out.dtype(), dtype);
  out.backward(r.to(dtype));
  Run run{out.to_doubles(), {}};
  for (size_t i = 0; i < xs.size(); ++i)
    if (inputs[i].requires_grad()) run.grads.push_back(xs[i].grad().to_doubles());
  return run;
}

void check_f32_matches_f64(const char* what, const GradFn& fn, Ts inputs, double fwd_tol = 1e-5,
                           double grad_tol = 1e-4) {
  SCOPED_TRACE(what);
  // Round the inputs to f32 first, so both runs see identical values.
  for (Tensor& x : inputs)
    if (gta::is_floating(x.dtype())) {
      bool rg = x.requires_grad();
      x = x.detach().to(DType::f32).to(DType::f64);
      if (rg) x.set_requires_grad(true);
    }
  Tensor probe;
  {
    gta::autograd::NoGradGuard ng;
    probe = fn(inputs);
  }
  Rng rng(77);
  Tensor r = randn(rng, probe.shape(), DType::f32).to(DType::f64);
  Run a = run_in(DType::f64, fn, inputs, r);
  Run b = run_in(DType::f32, fn, inputs, r);
  EXPECT_TRUE(close(b.out, a.out, fwd_tol, fwd_tol, probe.shape())) << "forward";
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i)
    EXPECT_TRUE(close(b.grads[i], a.grads[i], grad_tol, grad_tol)) << "gradient " << i;
}

TEST(GradCheck, F32MatchesF64) {
  Rng rng(40);
  check_f32_matches_f64("linear", [](const Ts& x) { return ops::linear(x[0], x[1], x[2]); },
                        {randn_param(rng, {3, 7, 13}), randn_param(rng, {5, 13}, 0.3), randn_param(rng, {5})});
  check_f32_matches_f64("matmul", [](const Ts& x) { return ops::matmul(x[0], x[1]); },
                        {randn_param(rng, {3, 5, 13}), randn_param(rng, {3, 13, 7})});
  check_f32_matches_f64("silu*sigmoid", [](const Ts& x) { return ops::mul(ops::silu(x[0]), ops::sigmoid(x[1])); },
                        {randn_param(rng, {5, 7}, 2.0), randn_param(rng, {7}, 2.0)});
  check_f32_matches_f64("rms_norm", [](const Ts& x) { return ops::rms_norm(x[0], x[1], 1e-6); },
                        {randn_param(rng, {5, 33}), randn_param(rng, {33})});
  check_f32_matches_f64("add_rms_norm",
                        [](const Ts& x) {
                          auto [h, y] = ops::add_rms_norm(x[0], x[1], x[2], 1e-6);
                          return ops::cat({h, y}, -1);
                        },
                        {randn_param(rng, {5, 33}), randn_param(rng, {5, 33}), randn_param(rng, {33})});
  check_f32_matches_f64("rope", [](const Ts& x) { return ops::rope(x[0], 8, 10000.0, 3); },
                        {randn_param(rng, {2, 5, 3, 10})});
  check_f32_matches_f64("softmax", [](const Ts& x) { return ops::softmax(x[0]); }, {randn_param(rng, {5, 31}, 3.0)});
  check_f32_matches_f64("attention", [](const Ts& x) { return ops::attention(x[0], x[1], x[2], 0.4); },
                        {randn_param(rng, {2, 5, 6, 7}), randn_param(rng, {2, 9, 3, 7}), randn_param(rng, {2, 9, 2, 5})});
  check_f32_matches_f64("cross_entropy", [](const Ts& x) { return ops::cross_entropy(x[0], x[1]); },
                        {randn_param(rng, {9, 29}, 2.0), randint(rng, {9}, 0, 29)});
  check_f32_matches_f64("embedding", [](const Ts& x) { return ops::embedding(x[0], x[1]); },
                        {randn_param(rng, {11, 6}), randint(rng, {4, 5}, 0, 11)});
  check_f32_matches_f64("sum", [](const Ts& x) { return ops::sum(x[0]); }, {randn_param(rng, {301, 7})});
}

}  // namespace
