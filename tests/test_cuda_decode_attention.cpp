// The decode attention kernels (kernels/decode_attention.cu) against the CPU reference, on fresh
// random inputs each run (the seed is printed on failure; GTA_TEST_SEED=N replays one):
//   - ops::decode_attention on bf16 caches read in place (capacity past len, so the strides are
//     the cache's, not the prefix's) against ops::attention in f64 on the same rounded numbers,
//     over the head layouts of every type (MHA, GQA, MQA with odd head counts, GTA's shared key
//     and latent, GVA's folded values) and contexts 1, 7, 129, 1000 (several chunks combined);
//   - ops::decode_latent_attention (MLA absorbed) against its formula in f64;
//   - ops::gta_value_decode (GTA's value decoder and gate, fused) against its composition;
//   - whole models of every type, bf16 on the GPU: logits of token-by-token cached decoding
//     (eager, and replayed as a CUDA graph) against the CPU f64 forward of the same weights, at
//     every position.
//   - the ops of a decode step at a device position (CUDA-graph replay) against their host twins.
// Every test skips without a GPU.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "autograd/tape.h"
#include "config/config.h"
#include "cuda_test_util.h"
#include "infer/decode_step.h"
#include "nn/model.h"
#include "ops/decode_position.h"
#include "ops/gta_value_decode.h"
#include "ops/ops.h"
#include "test_models.h"
#include "test_util.h"

namespace {

using gta::DType;
using gta::Tensor;
using gta_test::kGpu;
using gta_test::normwise;
using gta_test::randn;
using gta_test::Rng;
using gta_test::rounded;

struct Heads {
  const char* what;
  int64_t nq, nk, nv, dk, dv;
};

// (n_q, n_k, n_v, d_qk, d_v) as the layers pass them to ops::decode_attention.
constexpr Heads kHeads[] = {{"MHA 3x64", 3, 3, 3, 64, 64},
                            {"GQA-1B 20/5", 20, 5, 5, 64, 64},
                            {"MQA 7 heads", 7, 1, 1, 64, 64},
                            {"GTA-1B", 5, 1, 1, 64, 128},
                            {"GTA-S", 4, 1, 1, 64, 96},
                            {"GTA odd", 3, 1, 1, 24, 40},
                            {"GVA-S folded", 4, 1, 4, 64, 192},
                            {"GQA 128", 6, 2, 2, 128, 128},
                            {"32 heads on one key head, dv 8", 32, 1, 1, 16, 8}};

TEST(CudaDecodeAttention, MatchesCpuAttention) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = gta_test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  gta::autograd::NoGradGuard no_grad;
  for (const Heads& h : kHeads)
    for (int64_t len : {1, 7, 129, 1000})
      for (int64_t B : {1, 3}) {
        SCOPED_TRACE(std::string(h.what) + " len " + std::to_string(len) + " B " + std::to_string(B));
        const int64_t cap = len + 5;
        Tensor q = rounded(randn(rng, {B, h.nq, h.dk}), DType::bf16);
        Tensor k = rounded(randn(rng, {B, cap, h.nk, h.dk}), DType::bf16);
        Tensor v = rounded(randn(rng, {B, cap, h.nv, h.dv}), DType::bf16);
        const double scale = 1.0 / std::sqrt(static_cast<double>(h.dk));
        Tensor want = gta::ops::attention(q.reshape({B, 1, h.nq, h.dk}), k.slice(1, 0, len), v.slice(1, 0, len), scale);
        Tensor got = gta::ops::decode_attention(q.to(DType::bf16).to(kGpu), k.to(DType::bf16).to(kGpu),
                                                v.to(DType::bf16).to(kGpu), len, scale);
        ASSERT_EQ(got.shape(), (gta::Shape{B, h.nq, h.dv}));
        EXPECT_LE(normwise(got.to_doubles(), want.to_doubles()), 1e-2);
      }
}

// GTA's fused value decoder and gate (ops::gta_value_decode) against the composition the layer
// trains with (permute, batched matmul, tiled add, sigmoid, multiply) in f64 on the same
// bf16-rounded numbers: GTA-S's and GTA-1B's group sizes and an odd one, B 1 and 3, Wb scaled
// so that the decoded part and the tiled part weigh alike (a wrong column or group shows).
TEST(CudaDecodeAttention, GtaValueDecodeMatchesComposition) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = gta_test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  gta::autograd::NoGradGuard no_grad;
  struct Sizes {
    const char* what;
    int64_t nq, dl, e;
  };
  for (const Sizes& z : {Sizes{"GTA-S", 4, 96, 2}, Sizes{"GTA-1B", 5, 128, 2}, Sizes{"odd", 3, 40, 3}})
    for (int64_t B : {1, 3}) {
      SCOPED_TRACE(std::string(z.what) + " B " + std::to_string(B));
      const int64_t w = z.e * z.dl, d = z.nq * w;
      Tensor o = rounded(randn(rng, {B, z.nq, z.dl}), DType::bf16);
      Tensor wb = rounded(randn(rng, {w, z.nq * z.dl}, DType::f64, 1.0 / std::sqrt(double(z.dl))), DType::bf16);
      Tensor g = rounded(randn(rng, {B, d}, DType::f64, 2.0), DType::bf16);
      Tensor dec = gta::ops::matmul(o.permute({1, 0, 2}), wb.reshape({z.nq, z.dl, w})).permute({1, 0, 2});
      Tensor u = gta::ops::add(dec.reshape({B, z.nq, z.e, z.dl}), o.reshape({B, z.nq, 1, z.dl})).reshape({B, d});
      Tensor want = gta::ops::mul(gta::ops::sigmoid(g), u);
      Tensor og = o.to(DType::bf16).to(kGpu), wg = wb.to(DType::bf16).to(kGpu), gg = g.to(DType::bf16).to(kGpu);
      ASSERT_TRUE(gta::ops::gta_value_decode_supported(og, wg, gg));
      Tensor got = gta::ops::gta_value_decode(og, wg, gg);
      ASSERT_EQ(got.shape(), (gta::Shape{B, d}));
      EXPECT_LE(normwise(got.to_doubles(), want.to_doubles()), 1e-2);
    }
}

// The ops of a step at a device position (ops/decode_position.h) against their host-position
// twins: decode attention over position + 1 tokens of a larger cache (the chunking computed in
// the kernel from the length it reads; splits chosen for the capacity), RoPE, the cache row
// write and the embedding gather (an id out of range reads row 0).
TEST(CudaDecodeAttention, DevicePositionOpsMatchHostPosition) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = gta_test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  gta::autograd::NoGradGuard no_grad;
  auto gpu = [](const Tensor& t) { return t.to(DType::bf16).to(kGpu); };
  auto at = [](int64_t p) { return Tensor::from_vector(std::vector<int32_t>{static_cast<int32_t>(p)}, {1}).to(kGpu); };
  for (const Heads& h : {kHeads[1], kHeads[3], kHeads[6]}) {
    const int64_t B = 2, cap = 1005;
    Tensor q = gpu(randn(rng, {B, h.nq, h.dk})), k = gpu(randn(rng, {B, cap, h.nk, h.dk})),
           v = gpu(randn(rng, {B, cap, h.nv, h.dv}));
    for (int64_t pos : {0, 6, 128, 700, 1004}) {
      SCOPED_TRACE(std::string(h.what) + " position " + std::to_string(pos));
      const double scale = 0.125;
      ASSERT_TRUE(gta::ops::decode_attention_at_supported(q, k, v));
      Tensor got = gta::ops::decode_attention_at(q, k, v, scale, at(pos));
      Tensor want = gta::ops::decode_attention(q, k, v, pos + 1, scale);
      EXPECT_LE(normwise(got.to_doubles(), want.to_doubles()), 1e-2);  // other chunks: rounding only
    }
  }
  Tensor x = gpu(randn(rng, {3, 1, 5, 24}));
  for (int64_t pos : {0, 17, 4000}) {
    EXPECT_EQ(gta::ops::rope_at(x, 16, 500.0, at(pos)).to_doubles(), gta::ops::rope(x, 16, 500.0, pos).to_doubles())
        << "position " << pos;
    Tensor cache = gpu(randn(rng, {3, 20, 5, 24})), fresh = x;
    std::vector<double> w = cache.to_doubles(), f = fresh.to_doubles();
    const int64_t row = pos % 20;
    gta::ops::write_row_at(cache, fresh, at(row));
    const std::vector<double> g = cache.to_doubles();
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t j = 0; j < 5 * 24; ++j)
        w[static_cast<size_t>((b * 20 + row) * 120 + j)] = f[static_cast<size_t>(b * 120 + j)];
    EXPECT_EQ(g, w) << "row " << row;
  }
  Tensor table = gpu(randn(rng, {11, 16}));
  Tensor ids = Tensor::from_vector(std::vector<int32_t>{3, 0, 10, 7, 11, -1}, {2, 3}).to(kGpu);
  std::vector<double> got = gta::ops::embedding_at(table, ids).to_doubles(), t = table.to_doubles();
  const int32_t rows[] = {3, 0, 10, 7, 0, 0};
  for (int r = 0; r < 6; ++r)
    for (int j = 0; j < 16; ++j)
      EXPECT_EQ(got[static_cast<size_t>(r * 16 + j)], t[static_cast<size_t>(rows[r] * 16 + j)]);
}

// MLA's absorbed form against its formula: r_u = 1/sqrt(mean(c_u^2) + eps),
// s_u = scale (r_u q_lat . c_u + q_pe . k_pe_u), out = sum_u softmax(s)_u r_u c_u.
TEST(CudaDecodeAttention, LatentMatchesFormula) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = gta_test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  gta::autograd::NoGradGuard no_grad;
  const double eps = 1e-5;
  for (auto [h, dc, dr] : std::vector<std::array<int64_t, 3>>{{12, 256, 32}, {5, 40, 8}, {16, 128, 64}})
    for (int64_t len : {1, 7, 129, 1000}) {
      const int64_t B = 2, cap = len + 3;
      SCOPED_TRACE("h " + std::to_string(h) + " d_c " + std::to_string(dc) + " len " + std::to_string(len));
      Tensor ql = rounded(randn(rng, {B, h, dc}), DType::bf16), qp = rounded(randn(rng, {B, h, dr}), DType::bf16);
      Tensor c = rounded(randn(rng, {B, cap, 1, dc}), DType::bf16),
             kp = rounded(randn(rng, {B, cap, 1, dr}), DType::bf16);
      const double scale = 1.0 / std::sqrt(static_cast<double>(dc));
      const std::vector<double> vq = ql.to_doubles(), vp = qp.to_doubles(), vc = c.to_doubles(), vk = kp.to_doubles();
      std::vector<double> want(static_cast<size_t>(B * h * dc), 0.0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < h; ++i) {
          std::vector<double> s(static_cast<size_t>(len)), r(static_cast<size_t>(len));
          double mx = -INFINITY;
          for (int64_t u = 0; u < len; ++u) {
            const double* cu = &vc[static_cast<size_t>((b * cap + u) * dc)];
            const double* ku = &vk[static_cast<size_t>((b * cap + u) * dr)];
            double ss = 0, d1 = 0, d2 = 0;
            for (int64_t j = 0; j < dc; ++j) {
              ss += cu[j] * cu[j];
              d1 += vq[static_cast<size_t>((b * h + i) * dc + j)] * cu[j];
            }
            for (int64_t j = 0; j < dr; ++j) d2 += vp[static_cast<size_t>((b * h + i) * dr + j)] * ku[j];
            r[u] = 1.0 / std::sqrt(ss / static_cast<double>(dc) + eps);
            s[u] = scale * (r[u] * d1 + d2);
            mx = std::max(mx, s[u]);
          }
          double l = 0;
          for (int64_t u = 0; u < len; ++u) l += std::exp(s[u] - mx);
          for (int64_t u = 0; u < len; ++u) {
            const double p = std::exp(s[u] - mx) / l * r[u];
            for (int64_t j = 0; j < dc; ++j)
              want[static_cast<size_t>((b * h + i) * dc + j)] += p * vc[static_cast<size_t>((b * cap + u) * dc + j)];
          }
        }
      auto gpu = [](const Tensor& t) { return t.to(DType::bf16).to(kGpu); };
      ASSERT_TRUE(gta::ops::decode_latent_attention_supported(gpu(ql), gpu(qp), gpu(c), gpu(kp)));
      Tensor got = gta::ops::decode_latent_attention(gpu(ql), gpu(qp), gpu(c), gpu(kp), len, scale, eps);
      EXPECT_LE(normwise(got.to_doubles(), want), 1e-2);
    }
}

// Configs whose head widths the decode kernels take (multiples of 8), odd head counts where the
// type allows.
gta::config::ModelConfig kernel_config(const std::string& type) {
  gta::config::ModelConfig c = gta_test::model_config(37, 96, 2, 64, 6, type);
  c.rope_theta = 500;
  auto& a = c.attention;
  if (type == "gqa") {
    a.n_kv_heads = 2, a.qkv_bias = true;
  } else if (type == "mqa") {
    c.d_model = 80, c.n_heads = 5;
  } else if (type == "gva") {
    a.n_q_heads = 3, a.n_k_heads = 1;  // 6 value heads: 2 per map, folded
  } else if (type == "gha") {
    c.d_model = 128, c.n_heads = 8, a.n_q_heads = 2, a.n_k_heads = 1,
    a.n_v_heads = 4;  // 2 per map, each read by 2 heads
  } else if (type == "gta") {
    a.n_q_heads = 3, a.n_k_heads = 1, a.n_v_heads = 1, a.d_qk = 24, a.d_latent = 16, a.qkv_bias = true;
  } else if (type == "mla") {
    c.d_model = 64, c.n_heads = 4, a.d_c = 32, a.d_rope = 8, a.d_nope = 16, a.d_v = 16;
  }
  c.validate();
  return c;
}

class CudaDecodeModel : public ::testing::TestWithParam<std::string> {};

// Prefill 5 tokens, then decode 40 one at a time on the GPU (bf16, the decode kernels): the
// logits of every step against the CPU f64 forward of all 45 tokens with the same (bf16-rounded)
// weights. Two layers of bf16 activations stay within a few 1e-3; a wrong head, position or
// cache row moves the logits by O(1). Both step paths: eager (GTA_DECODE_GRAPH=0) and the CUDA
// graph (the first step eager, then one capture replayed), which is also rewound half way (the
// cache set back 20 tokens, the steps redone) to check that it follows the cache's length.
TEST_P(CudaDecodeModel, CachedDecodeMatchesCpuForward) {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = gta_test::fresh_seed();
  SCOPED_TRACE(GetParam() + " seed " + std::to_string(seed));
  gta::autograd::NoGradGuard no_grad;
  const gta::config::ModelConfig cfg = kernel_config(GetParam());
  gta::nn::Model gpu(cfg, DType::bf16, 7), cpu(cfg, DType::f64, 7);
  gta_test::randomize(gpu, seed);
  std::map<std::string, Tensor> weights;
  for (const auto& [name, t] : gpu.params().all()) weights[name] = t.to(DType::f64);
  cpu.params().load(weights, "bf16 model");
  gpu.params().move_to(kGpu);
  const int64_t B = 2, P = 5, N = 40;
  Tensor tokens = gta_test::random_tokens(B, P + N, cfg.vocab_size, seed ^ 1);
  Tensor want = cpu.forward(tokens);  // [B, P + N, V]
  for (bool graph : {false, true}) {
    SCOPED_TRACE(graph ? "CUDA graph" : "eager");
    setenv("GTA_DECODE_GRAPH", graph ? "1" : "0", 1);
    gta::nn::KVCache cache = gpu.make_cache(B, P + N, 8);  // grows while decoding (eager)
    gpu.forward(tokens.slice(1, 0, P).contiguous().to(kGpu), &cache);
    gta::infer::DecodeStep step(gpu, cache);
    auto decode = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        SCOPED_TRACE("position " + std::to_string(t));
        ASSERT_EQ(cache.len(), t);
        // tokens from the host at odd positions, from the device at even ones
        Tensor in = tokens.slice(1, t, t + 1).contiguous();
        Tensor got = step.run(t % 2 ? in : in.to(kGpu));
        Tensor ref = want.slice(1, t, t + 1).reshape({B, cfg.vocab_size});
        ASSERT_LE(normwise(got.to_doubles(), ref.to_doubles()), 5e-2);
      }
    };
    decode(P, P + N);
    cache.set_len(P + N - 20);
    decode(P + N - 20, P + N);
    EXPECT_EQ(step.path(), graph ? "decode kernels, CUDA graph" : "decode kernels");
  }
  unsetenv("GTA_DECODE_GRAPH");
}

INSTANTIATE_TEST_SUITE_P(Types, CudaDecodeModel, ::testing::Values("mha", "gqa", "mqa", "gva", "gha", "gta", "mla"));

}  // namespace
