// The autograd engine: gradient summation over multiple uses, accumulation across backward calls,
// zero_grad, the no-grad scope, errors, grad-ready hooks, nodes with several outputs, and a deep
// graph.
#include <cmath>
#include <utility>
#include <vector>

#include "autograd/tape.h"
#include "core/error.h"
#include "gradcheck.h"
#include "ops/ops.h"

namespace {

using namespace gta_test;  // DType, Shape, Tensor, close, param, ...
namespace ops = gta::ops;
using gta::autograd::NoGradGuard;
using V = std::vector<double>;

// An f64 leaf that requires grad.
Tensor leaf(const V& v, const Shape& s) { return param(Tensor::from_doubles(v, s, DType::f64)); }

TEST(Autograd, TensorUsedTwiceGetsSummedGradients) {
  Tensor x = leaf({0.5, -1.5, 2.0}, {3});
  Tensor y = ops::add(ops::mul(x, x), x);  // x appears three times
  Tensor loss = ops::sum(y);
  EXPECT_TRUE(loss.requires_grad());
  EXPECT_FALSE(loss.is_leaf());
  loss.backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().shape(), x.shape());
  EXPECT_EQ(x.grad().dtype(), DType::f64);
  EXPECT_TRUE(close(x.grad(), {2.0, -2.0, 5.0}, 1e-15));  // 2x + 1
}

TEST(Autograd, IntermediateUsedTwice) {
  Tensor x = leaf({0.5, -1.5, 2.0}, {3});
  Tensor h = ops::mul(x, x);
  Tensor loss = ops::sum(ops::add(h, ops::mul(h, h)));  // h + h^2, h = x^2
  loss.backward();
  V want;
  for (double v : {0.5, -1.5, 2.0}) want.push_back((1 + 2 * v * v) * 2 * v);
  EXPECT_TRUE(close(x.grad(), want, 1e-14));
  // Non-leaves keep no .grad.
  EXPECT_FALSE(h.grad().defined());
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({1.0, 2.0, -3.0}, {3});
  ops::sum(ops::add(ops::mul(x, x), x)).backward();
  ops::sum(ops::add(ops::mul(x, x), x)).backward();
  EXPECT_TRUE(close(x.grad(), {6.0, 10.0, -10.0}, 1e-15));
  // The same graph twice, with a different seed-free loss: 3x adds 3 each time.
  Tensor loss = ops::sum(ops::scale(x, 3.0));
  loss.backward();
  loss.backward();
  EXPECT_TRUE(close(x.grad(), {12.0, 16.0, -4.0}, 1e-15));
}

TEST(Autograd, ZeroGrad) {
  Tensor x = leaf({1.0, 2.0}, {2});
  ops::sum(ops::mul(x, x)).backward();
  EXPECT_TRUE(close(x.grad(), {2.0, 4.0}, 0.0));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  ops::sum(ops::mul(x, x)).backward();
  EXPECT_TRUE(close(x.grad(), {2.0, 4.0}, 0.0));  // not 4, 8
}

TEST(Autograd, LeafGradientOwnsItsStorage) {
  // The seed reaches the leaf unchanged; the leaf's .grad must not alias it, or later
  // accumulation would write into the caller's tensor.
  Tensor x = leaf({1.0, 2.0, 3.0}, {3});
  Tensor seed = Tensor::from_doubles({1.0, 1.0, 1.0}, {3}, DType::f64);
  x.reshape({3}).backward(seed);
  EXPECT_TRUE(close(x.grad(), {1.0, 1.0, 1.0}, 0.0));
  EXPECT_NE(x.grad().storage(), seed.storage());
  x.reshape({3}).backward(seed);
  EXPECT_TRUE(close(x.grad(), {2.0, 2.0, 2.0}, 0.0));
  EXPECT_TRUE(close(seed, {1.0, 1.0, 1.0}, 0.0));
}

TEST(Autograd, NoGradGuardStopsRecording) {
  Tensor x = leaf({1.0, 2.0}, {2});
  EXPECT_TRUE(gta::autograd::grad_enabled());
  {
    NoGradGuard g;
    EXPECT_FALSE(gta::autograd::grad_enabled());
    Tensor y = ops::mul(x, x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
    EXPECT_FALSE(x.reshape({2, 1}).requires_grad());
    EXPECT_FALSE(x.to(DType::f32).requires_grad());
    EXPECT_TRUE(close(y, {1.0, 4.0}, 0.0));  // the values are still computed
    {
      NoGradGuard nested;
      EXPECT_FALSE(gta::autograd::grad_enabled());
    }
    EXPECT_FALSE(gta::autograd::grad_enabled());  // the inner guard restores "off"
    EXPECT_THROW(ops::sum(y).backward(), gta::Error);
  }
  EXPECT_TRUE(gta::autograd::grad_enabled());
  Tensor z = ops::mul(x, x);
  EXPECT_TRUE(z.requires_grad());
  EXPECT_FALSE(z.is_leaf());
}

TEST(Autograd, BackwardErrors) {
  Tensor x = leaf({1.0, 2.0, 3.0}, {3});
  Tensor y = ops::mul(x, x);
  EXPECT_THROW(y.backward(), gta::Error);  // non-scalar, no gradient given
  EXPECT_THROW(y.backward(Tensor::ones({2}, DType::f64)), gta::Error);  // wrong seed shape
  EXPECT_FALSE(x.grad().defined());  // failed calls leave no gradient behind
  y.backward(Tensor::from_doubles({1.0, 0.5, -1.0}, {3}, DType::f64));
  EXPECT_TRUE(close(x.grad(), {2.0, 2.0, -6.0}, 0.0));
  // Nothing requires grad.
  Tensor c = Tensor::ones({1}, DType::f64);
  EXPECT_THROW(ops::scale(c, 2.0).backward(), gta::Error);
}

TEST(Autograd, EngineChecksWhatBackwardReturns) {
  Tensor x = leaf({1.0, 2.0}, {2});
  Tensor out;
  {
    NoGradGuard g;
    out = ops::scale(x, 1.0);
  }
  Tensor out2 = out.clone();
  gta::autograd::record(out, "two_grads", {x}, [](const Tensor& g) -> std::vector<Tensor> { return {g, g}; });
  EXPECT_THROW(ops::sum(out).backward(), gta::Error);
  gta::autograd::record(out2, "bad_shape", {x}, [](const Tensor& g) -> std::vector<Tensor> {
    return {Tensor::ones({3}, DType::f64)};
  });
  EXPECT_THROW(ops::sum(out2).backward(), gta::Error);
}

// An op with two outputs a = 2x, b = 3x recorded as one node: its backward runs once per pass,
// after both outputs' gradients are complete (a is used at two depths), and gets an undefined
// gradient for an output the loss does not reach.
TEST(Autograd, MultiOutputNodeRunsOnceWithEveryOutputsGradient) {
  Tensor x = leaf({0.5, -1.5, 2.0}, {3});
  int calls = 0;
  std::vector<bool> arrived;
  auto split = [&] {
    Tensor a, b;
    {
      NoGradGuard g;
      a = ops::scale(x, 2.0);
      b = ops::scale(x, 3.0);
    }
    gta::autograd::record_outputs({&a, &b}, "split", {x}, [&](const std::vector<Tensor>& g) -> std::vector<Tensor> {
      ++calls;
      arrived = {g[0].defined(), g[1].defined()};
      Tensor dx = Tensor::zeros({3}, DType::f64);
      if (g[0].defined()) dx = ops::add(dx, ops::scale(g[0], 2.0));
      if (g[1].defined()) dx = ops::add(dx, ops::scale(g[1], 3.0));
      return {dx};
    });
    return std::make_pair(a, b);
  };
  // L = sum((a + b) a) + sum(b): dL/da = 2a + b, dL/db = a + 1, dL/dx = 2(2a + b) + 3(a + 1) = 20x + 3.
  auto [a, b] = split();
  EXPECT_TRUE(a.requires_grad() && b.requires_grad());
  ops::add(ops::sum(ops::mul(ops::add(a, b), a)), ops::sum(b)).backward();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(arrived, (std::vector<bool>{true, true}));
  EXPECT_TRUE(close(x.grad(), {13.0, -27.0, 43.0}, 1e-14));
  // Only b reaches the loss: dL/dx = 3.
  x.zero_grad();
  ops::sum(split().second).backward();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(arrived, (std::vector<bool>{false, true}));
  EXPECT_TRUE(close(x.grad(), {3.0, 3.0, 3.0}, 0.0));
}

TEST(Autograd, GradReadyHookFiresOnceAfterAllContributions) {
  gta_test::Rng rng(3);
  Tensor x = gta_test::randn_param(rng, {5});
  Tensor w = gta_test::randn_param(rng, {5});
  Tensor unused = gta_test::randn_param(rng, {5});
  Tensor c = gta_test::randn(rng, {5});
  int calls_x = 0, calls_w = 0, calls_unused = 0;
  V seen_x, seen_w;
  x.register_grad_ready_hook([&](Tensor& g) {
    ++calls_x;
    seen_x = g.to_doubles();
  });
  w.register_grad_ready_hook([&](Tensor& g) {
    ++calls_w;
    seen_w = g.to_doubles();
  });
  unused.register_grad_ready_hook([&](Tensor&) { ++calls_unused; });
  auto loss_fn = [&] {
    // x reaches the loss along a shallow path, a deep one and through w's product.
    Tensor deep = x;
    for (int i = 0; i < 6; ++i) deep = ops::silu(deep);
    return ops::add(ops::add(ops::sum(x), ops::sum(deep)), ops::sum(ops::mul(ops::mul(x, w), c)));
  };
  loss_fn().backward();
  EXPECT_EQ(calls_x, 1);
  EXPECT_EQ(calls_w, 1);
  EXPECT_EQ(calls_unused, 0);
  EXPECT_FALSE(unused.grad().defined());
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(close(seen_x, x.grad().to_doubles(), 0.0));
  EXPECT_TRUE(close(seen_w, w.grad().to_doubles(), 0.0));
  // The final gradient really has all three contributions: compare with finite differences.
  auto r = gta_test::gradcheck(
      [&](const std::vector<Tensor>& in) {
        Tensor deep = in[0];
        for (int i = 0; i < 6; ++i) deep = ops::silu(deep);
        return ops::add(ops::add(ops::sum(in[0]), ops::sum(deep)), ops::sum(ops::mul(ops::mul(in[0], in[1]), c)));
      },
      {x, w});
  EXPECT_TRUE(r.ok) << r.message;
  // A second backward: once more each, and the hook sees the accumulated value.
  V first = x.grad().to_doubles();
  loss_fn().backward();
  EXPECT_EQ(calls_x, 2);
  EXPECT_EQ(calls_w, 2);
  V twice = first;
  for (double& v : twice) v *= 2;
  EXPECT_TRUE(close(seen_x, twice, 1e-14));
  EXPECT_TRUE(close(x.grad(), twice, 1e-14));
}

TEST(Autograd, LeavesThatDoNotRequireGradGetNone) {
  Tensor x = leaf({1.0, 2.0, 3.0}, {3});
  Tensor c = Tensor::from_doubles({4.0, 5.0, 6.0}, {3}, DType::f64);
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{2, 0}, {2});
  Tensor loss = ops::sum(ops::mul(ops::embedding(ops::mul(x, c).reshape({3, 1}), ids), Tensor::ones({1}, DType::f64)));
  loss.backward();
  EXPECT_TRUE(close(x.grad(), {4.0, 0.0, 6.0}, 0.0));
  EXPECT_FALSE(c.grad().defined());
  EXPECT_FALSE(ids.grad().defined());
  EXPECT_FALSE(c.requires_grad());
}

TEST(Autograd, DetachCutsTheGraph) {
  Tensor x = leaf({1.0, -2.0}, {2});
  ops::sum(ops::mul(x.detach(), x)).backward();
  EXPECT_TRUE(close(x.grad(), {1.0, -2.0}, 0.0));  // x, not 2x
}

TEST(Autograd, DeepChainDoesNotOverflowTheStack) {
  // 20000 recorded ops; backward and the graph's destruction must both cope.
  Tensor x = leaf({1.0, 2.0, 3.0}, {3});
  double expect = 0;
  {
    Tensor y = x;
    const int n = 10000;
    for (int i = 0; i < n; ++i) y = ops::add(ops::scale(y, 1.0001), x);
    // d/dx of y_n where y_{i+1} = a y_i + x, y_0 = x: a^n + sum_{i<n} a^i.
    const double a = 1.0001;
    expect = std::pow(a, n);
    for (int i = 0; i < n; ++i) expect += std::pow(a, i);
    ops::sum(y).backward();
  }  // the graph is released here
  EXPECT_TRUE(close(x.grad(), V(3, expect), 1e-9, 1e-10));
}

}  // namespace
