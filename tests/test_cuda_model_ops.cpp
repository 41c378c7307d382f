// The CUDA model ops against the CPU reference: embedding, rms_norm, add_rms_norm, rope, softmax, attention,
// cross_entropy (forward and backward), and the GPU optimizer paths (AdamW step, gradient norm
// and clipping). Every test skips when no GPU is visible (CPU-only builds and machines).
//
// Method (docs/architecture.md, "Principles": the CPU implementation is the reference): the same autograd graph runs
// on the CPU in f64 and on the GPU in f32 or bf16 from identical inputs (drawn in f64 and rounded
// to the GPU dtype first, so both sides start from the same numbers); backward is seeded with the
// same output gradient; the output and every input gradient are compared by the normwise relative
// error ||gpu - cpu||_2 / ||cpu||_2 (NaN never passes). Inputs are fresh random draws each run (the
// seed is printed on failure; GTA_TEST_SEED=N replays one); sizes are odd (T = 1, 7, 65, 129;
// widths 16, 64, 96, 128, the MLA 96/64 pair); attention covers every sharing ratio of 4 query
// heads (n_k, n_v in {1, 2, 4}) and the decode form T < S.
//
// Limits, and why:
//   f32  2e-5: inputs are exact in f32, so the error is fp32 rounding on the GPU (unit roundoff
//        6e-8) grown by the sums (row reductions up to ~5e3 terms, attention rows of up to 200 keys
//        times widths up to 128, chained through exp/log); measured on the H100: under 1e-5
//        (attention gradients at T = 1, where the reference gradient is tiny, up to 9e-6).
//   bf16 1e-2: every stored value (outputs and gradients) is rounded to bf16 (unit roundoff 2^-9 =
//        2e-3) while statistics accumulate in fp32; one op lands at 2e-3..5e-3 normwise. A wrong
//        index, mask or missing term gives O(1).
//        Attention gradients too (measured 1.6e-3..3.5e-3 on the H100): the backward's
//        D = dout . out uses the bf16-rounded output, as FlashAttention does, and dS = P (dP - D)
//        subtracts nearly equal numbers, which adds a little over a single rounding.
//   optimizer: f32 AdamW matches the CPU's f32 kernel to rounding (1e-6 normwise: the GPU may
//        fuse multiply-adds the CPU rounds separately); gradient norms are fp64 sums of the same
//        squares in another order (1e-12).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "autograd/tape.h"
#include "config/config.h"
#include "core/cuda_runtime.h"
#include "core/error.h"
#include "cuda_test_util.h"
#include "gradcheck.h"
#include "ops/ops.h"
#include "optim/adamw.h"
#include "optim/clip.h"

namespace {

using namespace gta_test;
namespace ops = gta::ops;
namespace cuda = gta::cuda;
using gta::Device;
using gta::DType;
using gta::Shape;
using gta::Tensor;
using Ts = std::vector<Tensor>;
using Fn = std::function<Tensor(const Ts&)>;


double tolerance(DType t) { return t == DType::f32 ? 2e-5 : 1e-2; }

using Limits = GraphLimits;
using Result = GraphCheck;

// fn on CPU f64 vs GPU dtype dt (cuda_test_util.h; see the file comment), limits tolerance(dt)
// unless `lim` says otherwise.
Result check_graph(const std::string& what, const Fn& fn, const Ts& inputs, DType dt, uint64_t seed,
                   Limits lim = {}) {
  return compare_graph_with_cpu(what, fn, inputs, dt, seed, tolerance(dt), lim);
}

std::string errs(const Result& r) {
  std::string s = "out " + std::to_string(r.out_err);
  for (double e : r.grad_err) s += " grad " + std::to_string(e);
  return s;
}

// ---- embedding ------------------------------------------------------------------------------------

TEST(CudaModelOps, Embedding) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  for (int64_t vocab : {5, 50, 1000})
    for (int64_t d : {16, 64, 96, 129})
      for (DType id_t : {DType::i32, DType::i64}) {
        const Shape ids_shape = {3, 7 + d % 5};
        Tensor w = randn_param(rng, {vocab, d});
        Tensor ids = randint(rng, ids_shape, 0, vocab, id_t);  // repeats when vocab is small
        for (DType dt : {DType::f32, DType::bf16})
          check_graph("embedding V" + std::to_string(vocab) + " d" + std::to_string(d),
                      [](const Ts& x) { return ops::embedding(x[0], x[1]); }, {w, ids}, dt, seed);
      }
}

TEST(CudaModelOps, EmbeddingBackwardIsDeterministic) {
  SKIP_WITHOUT_CUDA();
  Rng rng(fresh_seed());
  Tensor w = randn(rng, {17, 96}, DType::bf16).to(kGpu).detach();
  w.set_requires_grad(true);
  Tensor ids = randint(rng, {4096}, 0, 17).to(kGpu);  // ~240 tokens per row
  Tensor g = randn(rng, {4096, 96}, DType::bf16).to(kGpu);
  std::vector<double> first;
  for (int rep = 0; rep < 3; ++rep) {
    w.zero_grad();
    ops::embedding(w, ids).backward(g);
    std::vector<double> got = w.grad().to_doubles();
    if (rep == 0)
      first = got;
    else
      EXPECT_EQ(got, first) << "run " << rep;
  }
}

// ---- rms_norm -------------------------------------------------------------------------------------

TEST(CudaModelOps, RmsNorm) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  for (int64_t rows : {1, 7, 65, 129})
    for (int64_t d : {16, 64, 96, 128, 768}) {
      Tensor x = randn_param(rng, {rows, d});
      Tensor w = param(uniform(rng, {d}, 0.5, 1.5));
      for (DType dt : {DType::f32, DType::bf16}) {
        Result r = check_graph("rms_norm " + std::to_string(rows) + "x" + std::to_string(d),
                               [](const Ts& a) { return ops::rms_norm(a[0], a[1], 1e-5); }, {x, w}, dt, seed);
        if (rows == 129 && d == 768) std::printf("rms_norm %s 129x768: %s\n", gta::dtype_name(dt), errs(r).c_str());
      }
    }
}

// ---- add_rms_norm ---------------------------------------------------------------------------------

// Both outputs side by side (each with its own output gradient), then each alone (the other's
// gradient never arrives), on odd row counts and widths on both sides of the 512 that picks the
// block size.
TEST(CudaModelOps, AddRmsNorm) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  const Fn both = [](const Ts& a) {
    auto [h, y] = ops::add_rms_norm(a[0], a[1], a[2], 1e-5);
    return ops::cat({h, y}, -1);
  };
  const Fn y_only = [](const Ts& a) { return ops::add_rms_norm(a[0], a[1], a[2], 1e-5).second; };
  const Fn h_only = [](const Ts& a) { return ops::add_rms_norm(a[0], a[1], a[2], 1e-5).first; };
  for (const Shape& shape : {Shape{1, 16}, Shape{7, 33}, Shape{65, 96}, Shape{129, 128}, Shape{129, 768},
                             Shape{7, 1031}, Shape{2, 65, 4096}}) {
    const std::string what = "add_rms_norm " + gta::shape_str(shape);
    Tensor x = randn_param(rng, shape), r = randn_param(rng, shape);
    Tensor w = param(uniform(rng, {shape.back()}, 0.5, 1.5));
    for (DType dt : {DType::f32, DType::bf16}) {
      Result res = check_graph(what + " both", both, {x, r, w}, dt, seed);
      if (shape == Shape{129, 768})
        std::printf("add_rms_norm %s 129x768: %s\n", gta::dtype_name(dt), errs(res).c_str());
      check_graph(what + " y only", y_only, {x, r, w}, dt, seed);
      check_graph(what + " h only", h_only, {x, r, w}, dt, seed);
      // Frozen weight and residual.
      check_graph(what + " frozen", both, {x, r.detach(), w.detach()}, dt, seed);
    }
  }
}

// The decoder's pattern: h is the residual of the next fused op, y feeds the branch added there,
// only the last norm is used, and the two norms share a weight (its gradients accumulate). bf16
// rounds every stored value along a chain of four ops (limit 2e-2, twice one op's).
TEST(CudaModelOps, AddRmsNormChain) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  const Fn chain = [](const Ts& a) {
    auto [h1, y1] = ops::add_rms_norm(a[0], a[1], a[2], 1e-5);
    return ops::add_rms_norm(h1, ops::mul(ops::silu(y1), a[3]), a[2], 1e-5).second;
  };
  for (const Shape& shape : {Shape{3, 7, 96}, Shape{2, 65, 768}}) {
    const Shape row = {shape.back()};
    Tensor x = randn_param(rng, shape), r = randn_param(rng, shape);
    Tensor w = param(uniform(rng, row, 0.5, 1.5)), m = randn_param(rng, row);
    for (DType dt : {DType::f32, DType::bf16})
      check_graph("add_rms_norm chain " + gta::shape_str(shape), chain, {x, r, w, m}, dt, seed,
                  dt == DType::bf16 ? Limits{2e-2, 2e-2} : Limits{});
  }
}

// On the GPU the fused forward is add then rms_norm bit for bit (h rounded as the elementwise add
// rounds it, the same fp32 reduction over the same block), and its backward repeats bit for bit.
TEST(CudaModelOps, AddRmsNormIsAddThenRmsNormAndDeterministic) {
  SKIP_WITHOUT_CUDA();
  Rng rng(fresh_seed());
  for (DType dt : {DType::f32, DType::bf16})
    for (const Shape& shape : {Shape{129, 768}, Shape{4097, 1031}}) {
      SCOPED_TRACE(std::string(gta::dtype_name(dt)) + " " + gta::shape_str(shape));
      auto leaf = [&](const Shape& s) {
        Tensor t = randn(rng, s, dt).to(kGpu).detach();
        t.set_requires_grad(true);
        return t;
      };
      Tensor x = leaf(shape), r = leaf(shape), w = leaf({shape.back()});
      Shape both_shape = shape;
      both_shape.back() *= 2;
      Tensor g = randn(rng, both_shape, dt).to(kGpu);
      auto [h, y] = ops::add_rms_norm(x, r, w, 1e-5);
      Tensor h_ref = ops::add(x, r);
      EXPECT_EQ(h.to_doubles(), h_ref.to_doubles()) << "h";
      EXPECT_EQ(y.to_doubles(), ops::rms_norm(h_ref, w, 1e-5).to_doubles()) << "y";
      std::vector<std::vector<double>> first;
      for (int rep = 0; rep < 3; ++rep) {
        for (Tensor* t : {&x, &r, &w}) t->zero_grad();
        auto [h2, y2] = ops::add_rms_norm(x, r, w, 1e-5);
        ops::cat({h2, y2}, -1).backward(g);
        std::vector<std::vector<double>> got = {h2.to_doubles(), y2.to_doubles(), x.grad().to_doubles(),
                                                r.grad().to_doubles(), w.grad().to_doubles()};
        if (rep == 0)
          first = got;
        else
          EXPECT_EQ(got, first) << "run " << rep;
      }
    }
}

// ---- rope -----------------------------------------------------------------------------------------

TEST(CudaModelOps, Rope) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  struct Case { int64_t T, D; int rot; int64_t pos0; };
  for (Case c : {Case{1, 16, 16, 0}, Case{7, 64, 64, 0}, Case{65, 96, 64, 0}, Case{129, 128, 128, 0},
                 Case{7, 96, 32, 1000}, Case{1, 64, 64, 4095}, Case{65, 128, 128, 17}}) {
    Tensor x = randn_param(rng, {2, c.T, 3, c.D});
    for (DType dt : {DType::f32, DType::bf16})
      check_graph("rope T" + std::to_string(c.T) + " D" + std::to_string(c.D) + " rot" + std::to_string(c.rot) +
                      " pos0 " + std::to_string(c.pos0),
                  [c](const Ts& a) { return ops::rope(a[0], c.rot, 10000.0, c.pos0); }, {x}, dt, seed);
  }
}

// ---- softmax --------------------------------------------------------------------------------------

TEST(CudaModelOps, Softmax) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  for (int64_t rows : {1, 7, 65})
    for (int64_t d : {1, 7, 65, 129, 1000, 5000}) {
      Tensor x = randn_param(rng, {rows, d}, 3.0);
      for (DType dt : {DType::f32, DType::bf16})
        check_graph("softmax " + std::to_string(rows) + "x" + std::to_string(d),
                    [](const Ts& a) { return ops::softmax(a[0]); }, {x}, dt, seed);
    }
}

// ---- attention ------------------------------------------------------------------------------------

struct AttnCase {
  int64_t B, T, S, nq, nk, nv, dqk, dv;
  std::string str() const {
    return "attention B" + std::to_string(B) + " T" + std::to_string(T) + " S" + std::to_string(S) + " nq" +
           std::to_string(nq) + " nk" + std::to_string(nk) + " nv" + std::to_string(nv) + " dqk" +
           std::to_string(dqk) + " dv" + std::to_string(dv);
  }
};

void check_attention(const AttnCase& c, uint64_t seed, Rng& rng, bool print = false) {
  Tensor q = randn_param(rng, {c.B, c.T, c.nq, c.dqk});
  Tensor k = randn_param(rng, {c.B, c.S, c.nk, c.dqk});
  Tensor v = randn_param(rng, {c.B, c.S, c.nv, c.dv});
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.dqk));
  Fn fn = [scale](const Ts& a) { return ops::attention(a[0], a[1], a[2], scale); };
  Result f = check_graph(c.str(), fn, {q, k, v}, DType::f32, seed);
  Result b = check_graph(c.str(), fn, {q, k, v}, DType::bf16, seed);
  if (print) std::printf("%s: f32 %s | bf16 %s\n", c.str().c_str(), errs(f).c_str(), errs(b).c_str());
}

TEST(CudaModelOps, AttentionEverySharingRatio) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  const int64_t Ts_[] = {1, 7, 65, 129};
  const std::pair<int64_t, int64_t> widths[] = {{16, 16}, {64, 64}, {96, 64}, {128, 128}, {64, 96}};
  int n = 0;
  for (int64_t nk : {1, 2, 4})
    for (int64_t nv : {1, 2, 4}) {
      const int64_t T = Ts_[n % 4];
      const auto [dqk, dv] = widths[n % 5];
      ++n;
      check_attention({2, T, T, 4, nk, nv, dqk, dv}, seed, rng, true);
    }
}

TEST(CudaModelOps, AttentionWidthsAndLengths) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  for (int64_t T : {1, 7, 65, 129})
    for (auto [dqk, dv] : {std::pair<int64_t, int64_t>{16, 16}, {64, 64}, {96, 64}, {128, 128}, {64, 96}})
      check_attention({1, T, T, 2, 1, 2, dqk, dv}, seed, rng);
}

TEST(CudaModelOps, AttentionDecodeForm) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  // T < S: queries sit at positions S - T .. S - 1 (a cache of S - T earlier tokens).
  for (AttnCase c : {AttnCase{2, 1, 129, 4, 1, 1, 64, 96}, AttnCase{1, 7, 65, 4, 2, 4, 64, 64},
                     AttnCase{2, 65, 129, 4, 4, 2, 96, 64}, AttnCase{1, 1, 1, 2, 1, 1, 128, 128},
                     AttnCase{1, 33, 200, 6, 2, 3, 16, 16}})
    check_attention(c, seed, rng, true);
}

TEST(CudaModelOps, AttentionBackwardIsDeterministic) {
  SKIP_WITHOUT_CUDA();
  Rng rng(fresh_seed());
  auto leaf = [&](const Shape& s) {
    Tensor t = randn(rng, s, DType::bf16).to(kGpu).detach();
    t.set_requires_grad(true);
    return t;
  };
  Tensor q = leaf({2, 150, 4, 64}), k = leaf({2, 150, 1, 64}), v = leaf({2, 150, 2, 96});
  Tensor g = randn(rng, {2, 150, 4, 96}, DType::bf16).to(kGpu);
  std::vector<std::vector<double>> first;
  for (int rep = 0; rep < 3; ++rep) {
    for (Tensor* t : {&q, &k, &v}) t->zero_grad();
    ops::attention(q, k, v, 0.125).backward(g);
    std::vector<std::vector<double>> got = {q.grad().to_doubles(), k.grad().to_doubles(), v.grad().to_doubles()};
    if (rep == 0)
      first = got;
    else
      EXPECT_EQ(got, first) << "run " << rep;
  }
}

// ---- cross_entropy --------------------------------------------------------------------------------

TEST(CudaModelOps, CrossEntropy) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  for (int64_t N : {1, 7, 65})
    for (int64_t V : {16, 1000, 32000})
      for (int64_t ignore : {-1, 3}) {
        Tensor x = randn_param(rng, {N, V}, 2.0);
        Tensor t = randint(rng, {N}, 0, std::min<int64_t>(V, 6), N % 2 ? DType::i64 : DType::i32);
        if (V > 6) t = randint(rng, {N}, 0, V, N % 2 ? DType::i64 : DType::i32);
        // The loss is an fp32 scalar on the GPU (also for bf16 logits); dlogits in the logits' dtype.
        Limits lim;
        lim.out_dtype = DType::f32;
        for (DType dt : {DType::f32, DType::bf16}) {
          if (dt == DType::bf16) lim.out = 1e-5;  // the loss itself is computed in fp32 from the bf16 logits
          check_graph("cross_entropy " + std::to_string(N) + "x" + std::to_string(V) + " ignore " +
                          std::to_string(ignore),
                      [ignore](const Ts& a) { return ops::cross_entropy(a[0], a[1], ignore); }, {x, t}, dt, seed,
                      lim);
        }
      }
}

TEST(CudaModelOps, CrossEntropyAllIgnored) {
  SKIP_WITHOUT_CUDA();
  Rng rng(fresh_seed());
  Tensor x = randn(rng, {5, 40}, DType::f32).to(kGpu).detach();
  x.set_requires_grad(true);
  Tensor t = Tensor::from_vector(std::vector<int64_t>(5, -1), {5}).to(kGpu);
  Tensor loss = ops::cross_entropy(x, t, -1);
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  for (double g : x.grad().to_doubles()) EXPECT_EQ(g, 0.0);
}

// ---- optimizer ------------------------------------------------------------------------------------

TEST(CudaModelOptim, AdamWMatchesCpu) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  gta::config::OptimConfig cfg;
  cfg.weight_decay = 0.1;
  const std::vector<std::pair<std::string, Shape>> shapes = {
      {"model.embed_tokens.weight", {37, 16}}, {"model.layers.0.mlp.up_proj.weight", {129, 65}},
      {"model.layers.0.input_layernorm.weight", {65}}, {"model.layers.0.self_attn.q_proj.bias", {7}},
      {"big.weight", {300, 1000}}};
  for (DType dt : {DType::f32, DType::bf16}) {
    gta::optim::NamedTensors cpu_p, gpu_p;
    for (const auto& [name, s] : shapes) {
      Tensor p = randn(rng, s, dt);
      Tensor c = p.clone().detach(), g = p.to(kGpu).detach();
      c.set_requires_grad(true);
      g.set_requires_grad(true);
      cpu_p.emplace_back(name, c);
      gpu_p.emplace_back(name, g);
    }
    gta::optim::AdamW cpu_opt(cpu_p, cfg), gpu_opt(gpu_p, cfg);
    for (int step = 0; step < 4; ++step) {
      for (size_t i = 0; i < shapes.size(); ++i) {
        Tensor g = randn(rng, shapes[i].second, dt, 0.1);
        if (step == 2 && i == 1) {  // a parameter without a gradient is skipped
          cpu_p[i].second.zero_grad();
          gpu_p[i].second.zero_grad();
          continue;
        }
        if (i + 1 == shapes.size()) {  // big.weight's gradient starts one element into its buffer: the
                                       // kernels' element-wise path (unaligned), not the 4-wide one
          const Tensor whole = randn(rng, {g.numel() + 1}, dt, 0.1);
          g = whole.slice(0, 1, g.numel() + 1).reshape(shapes[i].second);
          gpu_p[i].second.set_grad(whole.to(kGpu).slice(0, 1, g.numel() + 1).reshape(shapes[i].second));
          cpu_p[i].second.set_grad(g.clone());
          continue;
        }
        cpu_p[i].second.set_grad(g.clone());
        gpu_p[i].second.set_grad(g.to(kGpu));
      }
      cpu_opt.step(1e-2);
      gpu_opt.step(1e-2);
    }
    for (size_t i = 0; i < shapes.size(); ++i) {
      const double e = normwise(gpu_p[i].second.to_doubles(), cpu_p[i].second.to_doubles());
      // f32: rounding only. bf16: the f32 masters agree to rounding; a parameter's bf16 value can
      // flip by one ulp (2^-8 relative) where the master sits on a rounding boundary.
      EXPECT_LE(e, dt == DType::f32 ? 1e-6 : 1e-3) << shapes[i].first << " " << gta::dtype_name(dt);
    }
    auto st = gpu_opt.state();
    for (const auto& [key, t] : st.tensors) EXPECT_TRUE(t.device().is_cuda()) << key << " lives on the GPU";
    auto cs = cpu_opt.state();
    for (const auto& [key, t] : cs.tensors)
      EXPECT_LE(normwise(st.tensors.at(key).to_doubles(), t.to_doubles()), 1e-6) << key;
    // load_state into GPU state round-trips.
    gta::optim::AdamW again(gpu_p, cfg);
    again.load_state(cs);
    for (const auto& [key, t] : again.state().tensors)
      EXPECT_EQ(t.to_doubles(), cs.tensors.at(key).to_doubles()) << key;
  }
}

TEST(CudaModelOptim, GradNormAndClip) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  for (DType dt : {DType::f32, DType::bf16}) {
    gta::optim::NamedTensors cpu_p, gpu_p;
    for (int64_t n : {1, 7, 65537, 300000, 129}) {
      std::string name = "p";  // appended, not "p" + ...: GCC 12 warns of a false -Wrestrict there
      name += std::to_string(n);
      Tensor g = randn(rng, {n}, dt);
      Tensor c = Tensor::zeros({n}, dt), d = Tensor::zeros({n}, dt, kGpu);
      c.set_grad(g.clone());
      d.set_grad(g.to(kGpu));
      cpu_p.emplace_back(name, c);
      gpu_p.emplace_back(name, d);
    }
    {  // a gradient one element into its buffer: not 16-byte aligned (the element-wise path)
      const Tensor whole = randn(rng, {70002}, dt);
      Tensor c = Tensor::zeros({70001}, dt), d = Tensor::zeros({70001}, dt, kGpu);
      c.set_grad(whole.slice(0, 1, 70002).clone());
      d.set_grad(whole.to(kGpu).slice(0, 1, 70002));
      cpu_p.emplace_back("offset", c);
      gpu_p.emplace_back("offset", d);
    }
    const Tensor gpu_alias = gpu_p[1].second, cpu_alias = cpu_p[1].second;
    gpu_p.emplace_back("alias", gpu_alias);  // the same tensor under a second name counts once
    cpu_p.emplace_back("alias", cpu_alias);
    const double nc = gta::optim::grad_norm(cpu_p), ng = gta::optim::grad_norm(gpu_p);
    EXPECT_NEAR(ng, nc, 1e-12 * nc) << gta::dtype_name(dt);
    EXPECT_EQ(gta::optim::grad_norm(gpu_p), ng) << "bit-identical run to run";
    // Scaling is the CPU's arithmetic (double product, one rounding): identical values.
    gta::optim::scale_grads(gpu_p, 0.37);
    gta::optim::scale_grads(cpu_p, 0.37);
    for (size_t i = 0; i + 1 < cpu_p.size(); ++i)
      EXPECT_EQ(gpu_p[i].second.grad().to_doubles(), cpu_p[i].second.grad().to_doubles()) << cpu_p[i].first;
    const double n1 = gta::optim::grad_norm(gpu_p);
    EXPECT_EQ(gta::optim::clip_grad_norm(gpu_p, 2 * n1), n1);  // under the limit: nothing changes
    EXPECT_EQ(gta::optim::grad_norm(gpu_p), n1);
    EXPECT_EQ(gta::optim::clip_grad_norm(gpu_p, 0.5 * n1), n1);
    EXPECT_NEAR(gta::optim::grad_norm(gpu_p), 0.5 * n1, (dt == DType::f32 ? 1e-6 : 1e-2) * n1);
  }
}

// ---- benchmark (run explicitly: --gtest_also_run_disabled_tests --gtest_filter='*AttentionRefBench*') ----

TEST(CudaModelBench, DISABLED_AttentionRefBench) {
  SKIP_WITHOUT_CUDA();
  Rng rng(1);
  struct Shape_ { const char* name; int64_t nq, nk, nv, dqk, dv; };
  const int64_t B = 8, T = 2048;
  for (Shape_ s : {Shape_{"MHA 12x64", 12, 12, 12, 64, 64}, Shape_{"GTA-S nq4 nk1 nv1 dqk64 dv96", 4, 1, 1, 64, 96}}) {
    auto leaf = [&](const Shape& sh) {
      Tensor t = uniform(rng, sh, -1, 1, DType::f32).to(DType::bf16).to(kGpu).detach();
      t.set_requires_grad(true);
      return t;
    };
    Tensor q = leaf({B, T, s.nq, s.dqk}), k = leaf({B, T, s.nk, s.dqk}), v = leaf({B, T, s.nv, s.dv});
    Tensor g = uniform(rng, {B, T, s.nq, s.dv}, -1, 1, DType::f32).to(DType::bf16).to(kGpu);
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.dqk));
    auto fwd = [&] {
      gta::autograd::NoGradGuard ng;
      return ops::attention(q, k, v, scale);
    };
    auto fwd_bwd = [&] {
      for (Tensor* t : {&q, &k, &v}) t->zero_grad();
      ops::attention(q, k, v, scale).backward(g);
    };
    auto time_ms = [&](auto&& f, int reps) {
      f();
      cuda::synchronize();
      std::vector<float> trials;
      for (int tr = 0; tr < 5; ++tr) {
        cuda::StreamTimer t;
        t.start();
        for (int r = 0; r < reps; ++r) f();
        t.stop();
        trials.push_back(t.elapsed_ms() / reps);
      }
      std::sort(trials.begin(), trials.end());
      return trials[trials.size() / 2];
    };
    const double f_ms = time_ms(fwd, 3), fb_ms = time_ms(fwd_bwd, 2);
    const double flop_f = 2.0 * B * s.nq * (double)T * T / 2 * (s.dqk + s.dv);
    std::printf("BENCH attention_ref bf16 B%lld T%lld %s: fwd %.3f ms (%.1f TFLOP/s), fwd+bwd %.3f ms (%.1f TFLOP/s)\n",
                (long long)B, (long long)T, s.name, f_ms, flop_f / f_ms * 1e-9, fb_ms,
                3.5 * flop_f / fb_ms * 1e-9);
  }
}

}  // namespace
