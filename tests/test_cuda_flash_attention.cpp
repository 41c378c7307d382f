// The tensor-core attention kernels (kernels/flash_attention.cu) against the CPU reference op and
// the reference GPU kernels (kernels/attention_ref.cu). Every test skips without a GPU.
//
// Method (as tests/test_cuda_model_ops.cpp): inputs are drawn in f64 and rounded to bf16 first, so
// the CPU op (f64) and the GPU op (bf16, which ops::attention sends to the flash kernels for these
// widths) start from the same numbers; backward is seeded with the same bf16-rounded output
// gradient; out, dq, dk and dv are compared by the normwise relative error ||gpu - cpu|| / ||cpu||.
// Inputs are fresh random draws each run (the seed is printed on failure; GTA_TEST_SEED=N replays
// one). Shapes: every sharing ratio of 4 query heads (n_k, n_v in {1, 2, 4}) and 12 query heads
// over 4 key heads, every (d_qk, d_v) the kernels are built for, odd lengths (T = 1, 7, 65, 129,
// 300: partial tiles, a single query, several key tiles) and the decode form T < S; every tiling
// the kernels choose between (EveryTiling, through their environment knobs).
//
// Limit 1e-2, and why: the kernels round their operands to bf16 (unit roundoff 2^-9 = 2e-3) at
// every stored value: P before P V, dS before dS K and dS^T Q, the output and every gradient;
// sums are fp32. One bf16 rounding lands at ~2e-3 normwise; the backward's D = dout . out uses the
// bf16-rounded output (as FlashAttention does) and dS = P (dP - D) subtracts nearly equal numbers,
// so gradients land at 2e-3..5e-3 (the reference kernels measured 1.6e-3..3.5e-3 on the H100). A
// wrong index, mask, missing tile or wrong head sum gives O(1).
// Flash against the reference GPU kernels: both bf16, so the same 1e-2 (two roundings); the f32
// lse of both must agree to 1e-5 normwise (fp32 sums in another order, exp2 instead of exp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "autograd/tape.h"
#include "core/cuda_runtime.h"
#include "cuda_test_util.h"
#include "gradcheck.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "kernels/attention_ref.h"
#include "kernels/flash_attention.h"
#endif

namespace {

using namespace gta_test;
namespace ops = gta::ops;
using gta::DType;
using gta::Shape;
using gta::Tensor;

constexpr double kTol = 1e-2;

struct Case {
  int64_t B, T, S, nq, nk, nv, dqk, dv;
  std::string str() const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "B%lld T%lld S%lld nq%lld nk%lld nv%lld dqk%lld dv%lld", (long long)B,
                  (long long)T, (long long)S, (long long)nq, (long long)nk, (long long)nv, (long long)dqk,
                  (long long)dv);
    return buf;
  }
};

struct Inputs {
  Tensor q, k, v, g;  // f64 on the CPU, values exactly representable in bf16
};

Inputs draw(const Case& c, Rng& rng) {
  return {rounded(randn(rng, {c.B, c.T, c.nq, c.dqk}), DType::bf16),
          rounded(randn(rng, {c.B, c.S, c.nk, c.dqk}), DType::bf16),
          rounded(randn(rng, {c.B, c.S, c.nv, c.dv}), DType::bf16),
          rounded(randn(rng, {c.B, c.T, c.nq, c.dv}), DType::bf16)};
}

// out, dq, dk, dv of ops::attention on the given device and dtype, as f64 values.
std::vector<std::vector<double>> run_op(const Inputs& in, double scale, gta::Device dev, DType dt) {
  auto leaf = [&](const Tensor& x) {
    Tensor t = x.to(dt).to(dev).detach();
    t.set_requires_grad(true);
    return t;
  };
  Tensor q = leaf(in.q), k = leaf(in.k), v = leaf(in.v);
  Tensor out = ops::attention(q, k, v, scale);
  out.backward(in.g.to(dt).to(dev));
  return {out.to_doubles(), q.grad().to_doubles(), k.grad().to_doubles(), v.grad().to_doubles()};
}

const char* kNames[] = {"out", "dq", "dk", "dv"};

// Flash (bf16, GPU) against the CPU op in f64; returns the worst of the four errors.
double check_vs_cpu(const Case& c, uint64_t seed, Rng& rng) {
  SCOPED_TRACE(c.str() + " (seed " + std::to_string(seed) + ")");
  const Inputs in = draw(c, rng);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.dqk));
  const auto want = run_op(in, scale, gta::Device::cpu(), DType::f64);
  const auto got = run_op(in, scale, kGpu, DType::bf16);
  double worst = 0;
  std::string line;
  for (int j = 0; j < 4; ++j) {
    const double e = normwise(got[j], want[j]);
    EXPECT_LE(e, kTol) << kNames[j];
    worst = std::max(worst, e);
    line += std::string(" ") + kNames[j] + " " + std::to_string(e);
  }
  std::printf("flash vs cpu %s:%s\n", c.str().c_str(), line.c_str());
  return worst;
}

TEST(CudaFlashAttention, EverySharingRatio) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  const int64_t Ts[] = {1, 7, 65, 129, 300};
  const std::pair<int64_t, int64_t> widths[] = {{64, 64}, {64, 96}, {96, 64}, {64, 192}, {128, 128}};
  int n = 0;
  for (int64_t nk : {1, 2, 4})
    for (int64_t nv : {1, 2, 4}) {
      const auto [dqk, dv] = widths[n % 5];
      check_vs_cpu({2, Ts[n % 5], Ts[n % 5], 4, nk, nv, dqk, dv}, seed, rng);
      ++n;
    }
  for (int64_t nv : {1, 4, 12}) check_vs_cpu({1, 129, 129, 12, 4, nv, 64, 64}, seed, rng);
  check_vs_cpu({1, 300, 300, 12, 4, 4, 64, 96}, seed, rng);
}

TEST(CudaFlashAttention, EveryWidthPair) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  const int64_t Ts[] = {1, 7, 65, 129, 300};
  int n = 0;
  for (int64_t dqk : {64, 96, 128})
    for (int64_t dv : {64, 96, 128, 192}) {
      const int64_t T = Ts[n % 5];
      check_vs_cpu({1, T, T, 4, 1 + n % 2, 2, dqk, dv}, seed, rng);  // GQA-like and GTA-like sharing
      ++n;
    }
}

TEST(CudaFlashAttention, DecodeForm) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  // T < S: queries sit at positions S - T .. S - 1 (a cache of S - T earlier tokens).
  for (Case c : {Case{2, 1, 300, 4, 1, 1, 64, 96}, Case{1, 33, 300, 4, 1, 4, 64, 192}, Case{2, 33, 300, 12, 4, 4, 64, 64},
                 Case{1, 1, 300, 4, 2, 4, 96, 64}, Case{1, 65, 129, 4, 4, 2, 128, 128}, Case{1, 1, 1, 2, 1, 1, 64, 64}})
    check_vs_cpu(c, seed, rng);
}

#ifdef GTA_WITH_CUDA
// The kernels called directly (no autograd): flash and reference on the same bf16 inputs.
struct Direct {
  Tensor out, lse, dq, dk, dv;
};

Direct run_kernels(bool flash, const Case& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                   float scale) {
  namespace kn = gta::kernels;
  const kn::AttnDims a = kn::attn_dims(c.B, c.T, c.S, c.nq, c.nk, c.nv, c.dqk, c.dv);
  Direct r{Tensor::empty({c.B, c.T, c.nq, c.dv}, DType::bf16, kGpu), Tensor::empty({c.B, c.nq, c.T}, DType::f32, kGpu),
           Tensor::empty(q.shape(), DType::bf16, kGpu), Tensor::empty(k.shape(), DType::bf16, kGpu),
           Tensor::empty(v.shape(), DType::bf16, kGpu)};
  if (flash) {
    kn::flash_attention_forward(a, scale, q.raw_data(), k.raw_data(), v.raw_data(), r.out.raw_data(),
                                r.lse.data<float>());
    const int64_t bytes = static_cast<int64_t>(kn::flash_attention_backward_scratch_bytes(a));
    Tensor scratch = Tensor::empty({(bytes + 3) / 4}, DType::f32, kGpu);
    kn::flash_attention_backward(a, scale, q.raw_data(), k.raw_data(), v.raw_data(), r.out.raw_data(), g.raw_data(),
                                 r.lse.data<float>(), scratch.raw_data(), r.dq.raw_data(), r.dk.raw_data(),
                                 r.dv.raw_data());
  } else {
    kn::attention_forward(DType::bf16, a, scale, q.raw_data(), k.raw_data(), v.raw_data(), r.out.raw_data(),
                          r.lse.data<float>());
    Tensor dsum = Tensor::empty({std::max<int64_t>(1, c.B * c.nq * c.T)}, DType::f32, kGpu);
    kn::attention_backward(DType::bf16, a, scale, q.raw_data(), k.raw_data(), v.raw_data(), r.out.raw_data(),
                           g.raw_data(), r.lse.data<float>(), dsum.data<float>(), r.dq.raw_data(), r.dk.raw_data(),
                           r.dv.raw_data());
  }
  return r;
}

TEST(CudaFlashAttention, MatchesReferenceKernels) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  for (Case c : {Case{2, 300, 300, 12, 4, 4, 64, 64}, Case{2, 257, 257, 4, 1, 1, 64, 96},
                 Case{1, 200, 200, 12, 12, 12, 96, 64}, Case{2, 129, 129, 4, 1, 4, 64, 192},
                 Case{1, 33, 300, 4, 2, 1, 128, 128}, Case{1, 1000, 1000, 12, 12, 12, 96, 64}}) {
    SCOPED_TRACE(c.str() + " (seed " + std::to_string(seed) + ")");
    const Inputs in = draw(c, rng);
    Tensor q = in.q.to(DType::bf16).to(kGpu), k = in.k.to(DType::bf16).to(kGpu), v = in.v.to(DType::bf16).to(kGpu),
           g = in.g.to(DType::bf16).to(kGpu);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.dqk));
    const Direct f = run_kernels(true, c, q, k, v, g, scale), r = run_kernels(false, c, q, k, v, g, scale);
    const double el = normwise(f.lse.to_doubles(), r.lse.to_doubles());
    EXPECT_LE(el, 1e-5) << "lse";
    const Tensor* ft[] = {&f.out, &f.dq, &f.dk, &f.dv};
    const Tensor* rt[] = {&r.out, &r.dq, &r.dk, &r.dv};
    std::string line = " lse " + std::to_string(el);
    for (int j = 0; j < 4; ++j) {
      const double e = normwise(ft[j]->to_doubles(), rt[j]->to_doubles());
      EXPECT_LE(e, kTol) << kNames[j];
      line += std::string(" ") + kNames[j] + " " + std::to_string(e);
    }
    std::printf("flash vs ref kernels %s:%s\n", c.str().c_str(), line.c_str());
  }
}

// The tilings the kernels pick between (64- or 128-row tiles per part, the dK/dV head split, and
// on an H100 the wgmma kernels or not; the environment knobs of kernels/flash/knobs.h) all
// compute the same function: each against the reference kernels, and bit-identical run to run.
TEST(CudaFlashAttention, EveryTiling) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  const char* kKnobs[] = {"GTA_FLASH_FWD_MR", "GTA_FLASH_DQ_MR",  "GTA_FLASH_DKV_MR",   "GTA_FLASH_SPLIT",
                          "GTA_FLASH_WGMMA",  "GTA_FLASH_PAIR",   "GTA_FLASH_DKV_HEADS"};
  constexpr int kN = 7;
  // wgmma: the forward with and without paired heads; dK/dV split by keys and by heads (the last
  // knob), with and without partials
  const char* settings[][kN] = {{"1", "1", "1", "1", "0", "1", "0"}, {"2", "2", "2", "1", "0", "1", "0"},
                                {"2", "1", "2", "2", "1", "1", "1"}, {"2", "2", "1", "4", "1", "1", "0"},
                                {"1", "2", "1", "2", "1", "0", "0"}, {"1", "1", "2", "1", "1", "1", "1"},
                                {"2", "2", "2", "1", "1", "0", "0"}};
  const Case cases[] = {Case{2, 300, 300, 12, 4, 4, 64, 64}, Case{1, 100, 233, 4, 1, 2, 64, 64},
                        Case{2, 257, 257, 4, 1, 1, 64, 96}, Case{1, 100, 233, 4, 1, 1, 64, 96},
                        Case{1, 200, 200, 12, 12, 12, 96, 64}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.str() + " (seed " + std::to_string(seed) + ")");
    const Inputs in = draw(c, rng);
    Tensor q = in.q.to(DType::bf16).to(kGpu), k = in.k.to(DType::bf16).to(kGpu), v = in.v.to(DType::bf16).to(kGpu),
           g = in.g.to(DType::bf16).to(kGpu);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.dqk));
    const Direct r = run_kernels(false, c, q, k, v, g, scale);
    for (const auto& set : settings) {
      for (int j = 0; j < kN; ++j) setenv(kKnobs[j], set[j], 1);
      const std::string name = std::string("fwd ") + set[0] + " dq " + set[1] + " dkv " + set[2] + " split " +
                               set[3] + " wgmma " + set[4] + " pair " + set[5] + " heads " + set[6];
      SCOPED_TRACE(name);
      const Direct f = run_kernels(true, c, q, k, v, g, scale), f2 = run_kernels(true, c, q, k, v, g, scale);
      EXPECT_LE(normwise(f.lse.to_doubles(), r.lse.to_doubles()), 1e-5) << "lse";
      const Tensor* ft[] = {&f.out, &f.dq, &f.dk, &f.dv};
      const Tensor* f2t[] = {&f2.out, &f2.dq, &f2.dk, &f2.dv};
      const Tensor* rt[] = {&r.out, &r.dq, &r.dk, &r.dv};
      for (int j = 0; j < 4; ++j) {
        EXPECT_LE(normwise(ft[j]->to_doubles(), rt[j]->to_doubles()), kTol) << kNames[j];
        EXPECT_EQ(ft[j]->to_doubles(), f2t[j]->to_doubles()) << kNames[j];
      }
    }
    for (const char* knob : kKnobs) unsetenv(knob);
  }
}

TEST(CudaFlashAttention, BackwardIsBitIdentical) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  // MHA, GQA, GTA (one unit per key head) and GVA (dk from fp32 partials of 4 units).
  for (Case c : {Case{2, 300, 300, 12, 4, 4, 64, 64}, Case{2, 257, 257, 4, 1, 1, 64, 96},
                 Case{2, 200, 233, 4, 1, 4, 64, 192}, Case{1, 150, 150, 12, 4, 6, 96, 64}}) {
    SCOPED_TRACE(c.str() + " (seed " + std::to_string(seed) + ")");
    const Inputs in = draw(c, rng);
    Tensor q = in.q.to(DType::bf16).to(kGpu), k = in.k.to(DType::bf16).to(kGpu), v = in.v.to(DType::bf16).to(kGpu),
           g = in.g.to(DType::bf16).to(kGpu);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.dqk));
    const Direct a = run_kernels(true, c, q, k, v, g, scale), b = run_kernels(true, c, q, k, v, g, scale);
    EXPECT_EQ(a.out.to_doubles(), b.out.to_doubles());
    EXPECT_EQ(a.lse.to_doubles(), b.lse.to_doubles());
    EXPECT_EQ(a.dq.to_doubles(), b.dq.to_doubles());
    EXPECT_EQ(a.dk.to_doubles(), b.dk.to_doubles());
    EXPECT_EQ(a.dv.to_doubles(), b.dv.to_doubles());
  }
}
#endif

TEST(CudaFlashAttention, SupportedSizes) {
#ifdef GTA_WITH_CUDA
  namespace kn = gta::kernels;
  EXPECT_TRUE(kn::flash_attention_supported(kn::attn_dims(8, 2048, 2048, 4, 1, 1, 64, 96)));
  EXPECT_TRUE(kn::flash_attention_supported(kn::attn_dims(1, 1, 300, 12, 4, 4, 128, 192)));
  EXPECT_FALSE(kn::flash_attention_supported(kn::attn_dims(1, 8, 8, 2, 1, 1, 16, 16)));  // width not built
  EXPECT_FALSE(kn::flash_attention_supported(kn::attn_dims(1, 8, 8, 2, 1, 1, 64, 80)));
  EXPECT_FALSE(kn::flash_attention_supported(kn::attn_dims(1, 9, 8, 2, 1, 1, 64, 64)));  // T > S
  EXPECT_FALSE(kn::flash_attention_supported(kn::attn_dims(1, 8, 8, 4, 3, 1, 64, 64)));  // n_k does not divide n_q
#else
  GTEST_SKIP() << "CPU-only build";
#endif
}

}  // namespace
