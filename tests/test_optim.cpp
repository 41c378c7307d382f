// AdamW (hand-computed steps in f64, decay groups by name, bf16 master weights, state round trip
// equals continuing, state errors), the learning-rate schedules at their boundaries, and gradient
// clipping (norm, scaling, non-finite norms, aliases, thread-count determinism).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <set>

#include "config/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/model.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"
#include "test_util.h"

using namespace gta;
using gta_test::bits_equal;
using gta_test::random_tokens;
using gta_test::tiny_gqa_config;

namespace {

void backward_loss(nn::Model& m, uint64_t seed) {
  m.loss(random_tokens(2, 6, 17, seed)).backward();
}

config::OptimConfig hand_cfg() { return {.weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}; }

}  // namespace

// ---- AdamW -----------------------------------------------------------------------------------

TEST(AdamW, FirstStepByHand) {
  // At t = 1 the bias corrections make mhat = g and vhat = g^2, so the Adam term is
  // lr * g / (|g| + eps). With lr 0.1, wd 0.1: p1 = p0 * 0.99 - 0.1 * g / (|g| + 1e-8).
  Tensor w = Tensor::from_doubles({1.0, -2.0, 0.5, 3.0}, {2, 2}, DType::f64).set_requires_grad(true);
  Tensor b = Tensor::from_doubles({1.0, -1.0}, {2}, DType::f64).set_requires_grad(true);
  optim::AdamW opt({{"layer.weight", w}, {"layer.bias", b}}, hand_cfg());
  w.set_grad(Tensor::from_doubles({0.5, -0.25, 2.0, 0.0}, {2, 2}, DType::f64));
  b.set_grad(Tensor::from_doubles({-4.0, 1e-3}, {2}, DType::f64));
  opt.step(0.1);
  EXPECT_EQ(opt.step_count(), 1);
  const auto pw = w.to_doubles(), pb = b.to_doubles();
  EXPECT_NEAR(pw[0], 0.99 - 0.1 * 0.5 / 0.50000001, 1e-15);     // 0.890000002
  EXPECT_NEAR(pw[0], 0.890000002, 1e-15);
  EXPECT_NEAR(pw[1], -1.98 + 0.1 * 0.25 / 0.25000001, 1e-15);
  EXPECT_NEAR(pw[2], 0.495 - 0.1 * 2.0 / 2.00000001, 1e-15);
  EXPECT_NEAR(pw[3], 2.97, 1e-15);                               // zero gradient: decay only
  EXPECT_NEAR(pb[0], 1.0 + 0.1 * 4.0 / 4.00000001, 1e-15);       // bias: no decay
  EXPECT_NEAR(pb[1], -1.0 - 0.1 * 1e-3 / (1e-3 + 1e-8), 1e-15);
}

TEST(AdamW, TwoStepsMatchTheFormula) {
  const config::OptimConfig o = hand_cfg();
  const std::vector<double> p0 = {0.3, -1.2, 2.5}, g1 = {0.1, -0.7, 1.5}, g2 = {-0.4, -0.2, 0.9};
  const double lr1 = 0.05, lr2 = 0.02;
  Tensor w = Tensor::from_doubles(p0, {1, 3}, DType::f64).set_requires_grad(true);
  optim::AdamW opt({{"w", w}}, o);
  w.set_grad(Tensor::from_doubles(g1, {1, 3}, DType::f64));
  opt.step(lr1);
  w.set_grad(Tensor::from_doubles(g2, {1, 3}, DType::f64));
  opt.step(lr2);
  const auto got = w.to_doubles();
  const auto st = opt.state();
  const auto m_got = st.tensors.at("w.exp_avg").to_doubles(), v_got = st.tensors.at("w.exp_avg_sq").to_doubles();
  for (int i = 0; i < 3; ++i) {
    double m = 0, v = 0, p = p0[i];
    const double gs[2] = {g1[i], g2[i]}, lrs[2] = {lr1, lr2};
    for (int t = 1; t <= 2; ++t) {
      const double g = gs[t - 1], lr = lrs[t - 1];
      m = 0.9 * m + 0.1 * g;
      v = 0.999 * v + 0.001 * g * g;
      const double mhat = m / (1 - std::pow(0.9, t)), vhat = v / (1 - std::pow(0.999, t));
      p = p - lr * 0.1 * p - lr * mhat / (std::sqrt(vhat) + 1e-8);
    }
    EXPECT_NEAR(got[i], p, 1e-14) << i;
    EXPECT_NEAR(m_got[i], m, 1e-15) << i;
    EXPECT_NEAR(v_got[i], v, 1e-15) << i;
  }
  // Step 2 of element 0 written out: m = 0.9*0.01 - 0.04 = -0.031, mhat = -0.031/0.19;
  // v = 0.999*1e-5 + 0.001*0.16 = 1.6999e-4, vhat = 1.6999e-4/0.001999.
  EXPECT_NEAR(m_got[0], -0.031, 1e-15);
  EXPECT_NEAR(v_got[0], 1.6999e-4, 1e-18);
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  Tensor a = Tensor::from_doubles({1, 2, 3, 4}, {2, 2}, DType::f64).set_requires_grad(true);
  Tensor b = Tensor::from_doubles({5, 6, 7, 8}, {2, 2}, DType::f64).set_requires_grad(true);
  optim::AdamW opt({{"a", a}, {"b", b}}, hand_cfg());
  a.set_grad(Tensor::ones({2, 2}, DType::f64));
  opt.step(0.1);
  EXPECT_EQ(b.to_doubles(), (std::vector<double>{5, 6, 7, 8}));  // no grad: no decay either
  EXPECT_NE(a.to_doubles()[0], 1.0);
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(AdamW, DecayGroupsByName) {
  nn::Model model(tiny_gqa_config(true, true), DType::f32, 3);
  const auto& params = model.params().all();
  config::OptimConfig o;
  optim::AdamW opt(params, o);
  std::set<std::string> decay;
  for (const auto& n : opt.decay_group()) decay.insert(n);
  bool saw_bias = false;
  for (const auto& [name, t] : params) {
    SCOPED_TRACE(name);
    const bool expect = t.ndim() >= 2 && name.find("embed_tokens") == std::string::npos &&
                        name.find("norm") == std::string::npos;
    EXPECT_EQ(opt.decays(name), expect);
    EXPECT_EQ(decay.count(name) == 1, expect);
    saw_bias = saw_bias || optim::is_bias_name(name);
  }
  EXPECT_TRUE(saw_bias);
  EXPECT_FALSE(opt.decays("model.embed_tokens.weight"));
  EXPECT_FALSE(opt.decays("model.norm.weight"));
  EXPECT_FALSE(opt.decays("model.layers.0.input_layernorm.weight"));
  EXPECT_FALSE(opt.decays("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_TRUE(opt.decays("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(opt.decays("model.layers.1.mlp.down_proj.weight"));
  EXPECT_EQ(opt.decay_group().size() + opt.no_decay_group().size(), params.size());

  config::OptimConfig all = o;
  all.decay_norms_and_biases = true;
  all.decay_embeddings = true;
  optim::AdamW opt_all(params, all);
  EXPECT_TRUE(opt_all.no_decay_group().empty());

  // Untied: lm_head is an ordinary output matrix and decays; the embedding does not.
  nn::Model untied(tiny_gqa_config(false), DType::f32, 3);
  optim::AdamW opt_u(untied.params().all(), o);
  EXPECT_TRUE(opt_u.decays("lm_head.weight"));
  EXPECT_FALSE(opt_u.decays("model.embed_tokens.weight"));
  EXPECT_THROW(opt_u.decays("nope"), Error);
}

TEST(AdamW, DecayOnlyTouchesTheDecayGroup) {
  // With zero gradients the Adam term is 0, so one step multiplies decayed parameters by
  // (1 - lr wd) and leaves the others exactly as they were.
  nn::Model model(tiny_gqa_config(true, true), DType::f64, 5);
  config::OptimConfig o;
  o.weight_decay = 0.5;
  optim::AdamW opt(model.params().all(), o);
  std::map<std::string, std::vector<double>> before;
  for (const auto& [name, t] : model.params().all()) {
    before[name] = t.to_doubles();
    Tensor(t).set_grad(Tensor::zeros(t.shape(), DType::f64));
  }
  opt.step(0.1);
  for (const auto& [name, t] : model.params().all()) {
    SCOPED_TRACE(name);
    const auto after = t.to_doubles();
    for (size_t i = 0; i < after.size(); ++i) {
      if (opt.decays(name)) {
        ASSERT_NEAR(after[i], before[name][i] * 0.95, 1e-15);
      } else {
        ASSERT_EQ(after[i], before[name][i]);
      }
    }
  }
}

TEST(AdamW, TiedAliasUpdatedOnceAsEmbedding) {
  Tensor e = Tensor::from_doubles({1, 2, 3, 4, 5, 6}, {3, 2}, DType::f64).set_requires_grad(true);
  config::OptimConfig o = hand_cfg();
  optim::AdamW opt({{"lm_head.weight", e}, {"model.embed_tokens.weight", e}}, o);
  EXPECT_FALSE(opt.decays("lm_head.weight"));  // the same tensor as the embedding
  EXPECT_EQ(opt.state().tensors.size(), 2u);   // one slot
  e.set_grad(Tensor::ones({3, 2}, DType::f64));
  opt.step(0.1);
  EXPECT_NEAR(e.to_doubles()[0], 1.0 - 0.1 / (1 + 1e-8), 1e-15);  // one update, no decay
}

TEST(AdamW, Bf16ParametersKeepF32Masters) {
  Tensor w = Tensor::ones({2, 2}, DType::bf16).set_requires_grad(true);
  config::OptimConfig o;
  o.weight_decay = 0;
  optim::AdamW opt({{"w", w}}, o);
  for (int i = 0; i < 100; ++i) {
    w.set_grad(Tensor::ones({2, 2}, DType::bf16));
    opt.step(1e-4);  // each step moves the master by ~1e-4, far below bf16's spacing at 1
  }
  const Tensor master = opt.state().tensors.at("w.master");
  EXPECT_EQ(master.dtype(), DType::f32);
  const auto mv = master.to_doubles(), pv = w.to_doubles();
  for (size_t i = 0; i < mv.size(); ++i) {
    EXPECT_NEAR(mv[i], 0.99, 1e-5);
    EXPECT_EQ(pv[i], static_cast<float>(bf16(static_cast<float>(mv[i]))));
  }
  EXPECT_LT(pv[0], 1.0);  // the accumulated update reached the bf16 parameter
}

TEST(AdamW, StateRoundTripEqualsContinuing) {
  const auto cfg = tiny_gqa_config();
  config::OptimConfig o;
  nn::Model a(cfg, DType::f32, 11);
  optim::AdamW opt_a(a.params().all(), o);
  for (int s = 0; s < 3; ++s) {
    opt_a.zero_grad();
    backward_loss(a, 100 + s);
    opt_a.step(1e-2);
  }
  // Snapshot (copies) of the parameters and the optimizer state.
  std::map<std::string, Tensor> weights;
  for (const auto& [n, t] : a.params().all()) weights[n] = t.detach().clone();
  optim::AdamWState snap = opt_a.state();
  for (auto& [n, t] : snap.tensors) t = t.clone();

  nn::Model b(cfg, DType::f32, 999);  // different init, overwritten below
  optim::AdamW opt_b(b.params().all(), o);
  b.params().load(weights, "snapshot");
  opt_b.load_state(snap, "snapshot");
  EXPECT_EQ(opt_b.step_count(), 3);
  for (int s = 3; s < 5; ++s) {
    opt_a.zero_grad();
    opt_b.zero_grad();
    backward_loss(a, 100 + s);
    backward_loss(b, 100 + s);
    opt_a.step(1e-2);
    opt_b.step(1e-2);
  }
  for (const auto& [n, t] : a.params().all()) EXPECT_TRUE(bits_equal(t, b.params().get(n))) << n;
  const auto sa = opt_a.state(), sb = opt_b.state();
  ASSERT_EQ(sa.tensors.size(), sb.tensors.size());
  for (const auto& [n, t] : sa.tensors) EXPECT_TRUE(bits_equal(t, sb.tensors.at(n))) << n;
}

TEST(AdamW, LoadStateErrorsNameTheProblem) {
  Tensor w = Tensor::zeros({2, 3}).set_requires_grad(true);
  optim::AdamW opt({{"w", w}}, config::OptimConfig{});
  auto expect_error = [&](const optim::AdamWState& st, const std::string& needle) {
    SCOPED_TRACE(needle);
    gta_test::expect_error([&] { opt.load_state(st, "opt.safetensors"); }, {needle, "opt.safetensors"});
  };
  optim::AdamWState ok{{{"w.exp_avg", Tensor::ones({2, 3})}, {"w.exp_avg_sq", Tensor::ones({2, 3})}}, 4};
  auto missing = ok;
  missing.tensors.erase("w.exp_avg_sq");
  expect_error(missing, "missing tensor w.exp_avg_sq");
  auto shape = ok;
  shape.tensors["w.exp_avg"] = Tensor::ones({3, 2});
  expect_error(shape, "w.exp_avg has shape [3, 2]");
  auto extra = ok;
  extra.tensors["v.exp_avg"] = Tensor::ones({1});
  expect_error(extra, "unexpected tensor v.exp_avg");
  // An f32 parameter accepts the fp32 master of a bf16 run (GPU mixed precision resumed in f32)
  // and ignores it; a master that does not fit is still an error.
  auto master = ok;
  master.tensors["w.master"] = Tensor::ones({2, 3, 1});
  expect_error(master, "w.master has shape [2, 3, 1]");
  auto neg = ok;
  neg.step = -1;
  expect_error(neg, "step");
  // A failed load changes nothing.
  EXPECT_EQ(opt.step_count(), 0);
  EXPECT_EQ(opt.state().tensors.at("w.exp_avg").to_doubles()[0], 0.0);
  auto from_bf16 = ok;
  from_bf16.tensors["w.master"] = Tensor::ones({2, 3});
  opt.load_state(from_bf16, "opt.safetensors");
  EXPECT_EQ(opt.step_count(), 4);
  EXPECT_EQ(opt.state().tensors.at("w.exp_avg").to_doubles()[0], 1.0);
  EXPECT_EQ(opt.state().tensors.count("w.master"), 0u);  // an f32 parameter keeps no master
}

// ---- schedules -------------------------------------------------------------------------------

TEST(Schedule, WarmupThenCosine) {
  config::OptimConfig o{.lr = 1.0, .min_lr_ratio = 0.1, .warmup_steps = 10, .schedule = "cosine"};
  const int64_t S = 110;
  EXPECT_DOUBLE_EQ(optim::lr_at(o, S, 0), 0.1);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, S, 4), 0.5);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, S, 9), 1.0);    // last warmup step reaches lr
  EXPECT_DOUBLE_EQ(optim::lr_at(o, S, 10), 1.0);   // decay starts at lr
  EXPECT_NEAR(optim::lr_at(o, S, 60), 0.55, 1e-15);  // cosine midpoint: halfway to lr_min
  EXPECT_NEAR(optim::lr_at(o, S, 35), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI / 4)), 1e-15);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, S, S), 0.1);    // reaches lr_min at `steps`
  EXPECT_GT(optim::lr_at(o, S, S - 1), 0.1);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, S, S + 50), 0.1);
  double prev = 2;
  for (int64_t s = 10; s <= S; ++s) {
    const double lr = optim::lr_at(o, S, s);
    EXPECT_LE(lr, prev);
    prev = lr;
  }
}

TEST(Schedule, LinearConstantAndEdgeCases) {
  config::OptimConfig o{.lr = 2.0, .min_lr_ratio = 0.25, .warmup_steps = 4, .schedule = "linear"};
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 104, 0), 0.5);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 104, 3), 2.0);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 104, 4), 2.0);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 104, 29), 2.0 - 1.5 * 0.25);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 104, 54), 1.25);  // midpoint
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 104, 104), 0.5);
  o.schedule = "constant";
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 104, 1), 1.0);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 104, 4), 2.0);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 104, 104), 2.0);
  // No warmup: the first step uses the full rate.
  o.schedule = "cosine";
  o.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 100, 0), 2.0);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 100, 100), 0.5);
  // Warmup longer than the run: warmup, then lr_min.
  o.warmup_steps = 50;
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 20, 19), 2.0 * 20 / 50);
  EXPECT_DOUBLE_EQ(optim::lr_at(o, 20, 60), 0.5);
  o.schedule = "step";
  EXPECT_THROW(optim::lr_at(o, 20, 0), Error);
  o.schedule = "cosine";
  EXPECT_THROW(optim::lr_at(o, 20, -1), Error);
}

// ---- clipping --------------------------------------------------------------------------------

TEST(Clip, NormAndScaling) {
  Tensor a = Tensor::zeros({2}).set_requires_grad(true);
  Tensor b = Tensor::zeros({1, 1}, DType::f64).set_requires_grad(true);
  Tensor c = Tensor::zeros({3}).set_requires_grad(true);  // no gradient: skipped
  const optim::NamedTensors ps = {{"a", a}, {"b", b}, {"c", c}, {"a_alias", a}};
  auto set = [&] {
    a.set_grad(Tensor::from_doubles({3, 4}, {2}));
    b.set_grad(Tensor::from_doubles({12}, {1, 1}, DType::f64));
  };
  set();
  EXPECT_DOUBLE_EQ(optim::grad_norm(ps), 13.0);  // the alias counts once
  EXPECT_DOUBLE_EQ(optim::clip_grad_norm(ps, 20.0), 13.0);
  EXPECT_EQ(a.grad().to_doubles(), (std::vector<double>{3, 4}));
  EXPECT_DOUBLE_EQ(optim::clip_grad_norm(ps, 0.0), 13.0);  // 0 disables
  EXPECT_EQ(a.grad().to_doubles(), (std::vector<double>{3, 4}));
  EXPECT_DOUBLE_EQ(optim::clip_grad_norm(ps, 6.5), 13.0);  // returns the pre-clip norm
  EXPECT_EQ(a.grad().to_doubles(), (std::vector<double>{1.5, 2}));
  EXPECT_EQ(b.grad().to_doubles(), (std::vector<double>{6}));
  EXPECT_DOUBLE_EQ(optim::grad_norm(ps), 6.5);
  EXPECT_FALSE(c.grad().defined());
}

TEST(Clip, NonFiniteNormIsReportedNotApplied) {
  Tensor a = Tensor::zeros({3}).set_requires_grad(true);
  const optim::NamedTensors ps = {{"a", a}};
  a.set_grad(Tensor::from_doubles({1, std::numeric_limits<double>::quiet_NaN(), 2}, {3}));
  EXPECT_TRUE(std::isnan(optim::clip_grad_norm(ps, 1.0)));
  EXPECT_EQ(a.grad().to_doubles()[0], 1.0);
  a.set_grad(Tensor::from_doubles({1, std::numeric_limits<double>::infinity(), 2}, {3}));
  EXPECT_TRUE(std::isinf(optim::clip_grad_norm(ps, 1.0)));
  EXPECT_EQ(a.grad().to_doubles()[2], 2.0);
  // No gradient at all: norm 0.
  EXPECT_EQ(optim::grad_norm({{"z", Tensor::zeros({2})}}), 0.0);
}

TEST(Clip, NormIsIndependentOfThreadCount) {
  Rng rng(7);
  std::vector<double> v(300001);
  for (double& x : v) x = rng.normal();
  Tensor a = Tensor::zeros({300001}).set_requires_grad(true);
  a.set_grad(Tensor::from_doubles(v, {300001}));
  const optim::NamedTensors ps = {{"a", a}};
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double n1 = optim::grad_norm(ps);
  omp_set_num_threads(3);
  const double n3 = optim::grad_norm(ps);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(&n1, &n3, sizeof n1), 0);
  double ref = 0;
  for (double x : v) ref += static_cast<double>(static_cast<float>(x)) * static_cast<float>(x);
  EXPECT_NEAR(n1, std::sqrt(ref), 1e-9 * n1);
}
