// Forward values of every op against naive reference loops written from the math (docs/attention.md,
// "The block" and "One primitive underneath", for RoPE and attention), on random inputs with odd
// sizes; larger sizes exercise the parallel paths; f32 runs are compared with the f64 reference.
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "gradcheck.h"
#include "ops/ops.h"

namespace {

using namespace gta_test;  // DType, Shape, Tensor, Rng, randn, gradcheck, ...
namespace ops = gta::ops;
using gta::shape_numel;
using gta::shape_str;
using V = std::vector<double>;

// Flat row-major offset of a multi-index.
int64_t at(const Shape& shape, std::initializer_list<int64_t> idx) {
  int64_t off = 0, d = 0;
  for (int64_t i : idx) off = off * shape[d++] + i;
  return off;
}

// ---- references -----------------------------------------------------------------------------------

// y[r, o] = sum_i x[r, i] w[o, i] + b[o]
V ref_linear(const V& x, const V& w, const V* b, int64_t rows, int64_t in, int64_t out) {
  V y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      long double acc = b ? (*b)[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) acc += static_cast<long double>(x[r * in + i]) * w[o * in + i];
      y[r * out + o] = static_cast<double>(acc);
    }
  return y;
}

// c[p] = a[p] @ b[p or shared]
V ref_matmul(const V& a, const V& b, int64_t batch, int64_t m, int64_t k, int64_t n, bool shared_b) {
  V c(batch * m * n);
  for (int64_t p = 0; p < batch; ++p)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        long double acc = 0;
        for (int64_t l = 0; l < k; ++l)
          acc += static_cast<long double>(a[(p * m + i) * k + l]) * b[(shared_b ? 0 : p * k * n) + l * n + j];
        c[(p * m + i) * n + j] = static_cast<double>(acc);
      }
  return c;
}

V ref_rms_norm(const V& x, const V& w, int64_t d, double eps) {
  V y(x.size());
  for (size_t r = 0; r < x.size() / d; ++r) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += x[r * d + j] * x[r * d + j];
    const double inv = 1.0 / std::sqrt(ss / d + eps);
    for (int64_t j = 0; j < d; ++j) y[r * d + j] = x[r * d + j] * inv * w[j];
  }
  return y;
}

// Rotate-half RoPE: for i < rot/2, angle = pos * theta^(-2i/rot),
//   y[i] = x[i] cos - x[i + rot/2] sin,  y[i + rot/2] = x[i + rot/2] cos + x[i] sin; the rest copied.
V ref_rope(const V& x, const Shape& s, int64_t rot, double theta, int64_t pos0) {
  const int64_t B = s[0], T = s[1], H = s[2], D = s[3], half = rot / 2;
  V y = x;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t base = at(s, {b, t, h, 0});
        for (int64_t i = 0; i < half; ++i) {
          const double inv_freq = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(rot));
          const double ang = static_cast<double>(pos0 + t) * inv_freq;
          const double c = std::cos(ang), sn = std::sin(ang);
          const double x1 = x[base + i], x2 = x[base + i + half];
          y[base + i] = x1 * c - x2 * sn;
          y[base + i + half] = x2 * c + x1 * sn;
        }
        (void)D;
      }
  return y;
}

V ref_softmax(const V& x, int64_t d) {
  V y(x.size());
  for (size_t r = 0; r < x.size() / d; ++r) {
    double m = -INFINITY;
    for (int64_t j = 0; j < d; ++j) m = std::max(m, x[r * d + j]);
    double z = 0;
    for (int64_t j = 0; j < d; ++j) z += std::exp(x[r * d + j] - m);
    for (int64_t j = 0; j < d; ++j) y[r * d + j] = std::exp(x[r * d + j] - m) / z;
  }
  return y;
}

struct AttnDims {
  int64_t B, T, S, n_q, n_k, n_v, d_qk, d_v;
};

// The explicit causal loop: query t of batch b sits at position S - T + t and sees keys 0..that;
// query head i reads key head i / (n_q/n_k) and value head i / (n_q/n_v).
V ref_attention(const V& q, const V& k, const V& v, const AttnDims& a, double scale) {
  const Shape qs{a.B, a.T, a.n_q, a.d_qk}, ks{a.B, a.S, a.n_k, a.d_qk}, vs{a.B, a.S, a.n_v, a.d_v},
      os{a.B, a.T, a.n_q, a.d_v};
  V out(a.B * a.T * a.n_q * a.d_v, 0.0);
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t t = 0; t < a.T; ++t)
      for (int64_t i = 0; i < a.n_q; ++i) {
        const int64_t hk = i / (a.n_q / a.n_k), hv = i / (a.n_q / a.n_v), pos = a.S - a.T + t;
        V sc(pos + 1);
        double m = -INFINITY;
        for (int64_t s = 0; s <= pos; ++s) {
          double dot = 0;
          for (int64_t j = 0; j < a.d_qk; ++j) dot += q[at(qs, {b, t, i, j})] * k[at(ks, {b, s, hk, j})];
          sc[s] = dot * scale;
          m = std::max(m, sc[s]);
        }
        double z = 0;
        for (double& e : sc) z += (e = std::exp(e - m));
        for (int64_t s = 0; s <= pos; ++s)
          for (int64_t j = 0; j < a.d_v; ++j) out[at(os, {b, t, i, j})] += sc[s] / z * v[at(vs, {b, s, hv, j})];
      }
  return out;
}

double ref_cross_entropy(const V& x, const std::vector<int64_t>& tg, int64_t V_, int64_t ignore) {
  double total = 0;
  int64_t count = 0;
  for (size_t r = 0; r < tg.size(); ++r) {
    if (tg[r] == ignore) continue;
    double m = -INFINITY;
    for (int64_t j = 0; j < V_; ++j) m = std::max(m, x[r * V_ + j]);
    double z = 0;
    for (int64_t j = 0; j < V_; ++j) z += std::exp(x[r * V_ + j] - m);
    total += m + std::log(z) - x[r * V_ + tg[r]];
    ++count;
  }
  return total / static_cast<double>(count);
}

// ---- linear algebra ---------------------------------------------------------------------------------

TEST(Forward, Linear) {
  Rng rng(1);
  Tensor x = randn(rng, {3, 7, 13}), w = randn(rng, {5, 13}), b = randn(rng, {5});
  Tensor y = ops::linear(x, w, b);
  ASSERT_EQ(y.shape(), (Shape{3, 7, 5}));
  V bv = b.to_doubles();
  EXPECT_TRUE(close(y, ref_linear(x.to_doubles(), w.to_doubles(), &bv, 21, 13, 5), 1e-12, 1e-12));
  Tensor y2 = ops::linear(x, w);
  EXPECT_TRUE(close(y2, ref_linear(x.to_doubles(), w.to_doubles(), nullptr, 21, 13, 5), 1e-12, 1e-12));
  // Non-contiguous input.
  Tensor xt = randn(rng, {13, 7}).transpose(0, 1);
  EXPECT_TRUE(close(ops::linear(xt, w), ref_linear(xt.to_doubles(), w.to_doubles(), nullptr, 7, 13, 5), 1e-12, 1e-12));
  // One input vector.
  Tensor x1 = randn(rng, {13});
  Tensor y1 = ops::linear(x1, w, b);
  EXPECT_EQ(y1.shape(), (Shape{5}));
  EXPECT_TRUE(close(y1, ref_linear(x1.to_doubles(), w.to_doubles(), &bv, 1, 13, 5), 1e-12, 1e-12));
}

TEST(Forward, LinearLarge) {
  Rng rng(2);
  Tensor x = randn(rng, {257, 129}), w = randn(rng, {65, 129}), b = randn(rng, {65});
  V bv = b.to_doubles();
  V ref = ref_linear(x.to_doubles(), w.to_doubles(), &bv, 257, 129, 65);
  EXPECT_TRUE(close(ops::linear(x, w, b), ref, 1e-10, 1e-12));
  // f32 from the same (f32-representable) values.
  Tensor x32 = x.to(DType::f32), w32 = w.to(DType::f32), b32 = b.to(DType::f32);
  V bv32 = b32.to_doubles();
  V ref32 = ref_linear(x32.to_doubles(), w32.to_doubles(), &bv32, 257, 129, 65);
  Tensor y32 = ops::linear(x32, w32, b32);
  EXPECT_EQ(y32.dtype(), DType::f32);
  EXPECT_TRUE(close(y32, ref32, 1e-4, 1e-5));
}

TEST(Forward, Matmul) {
  Rng rng(3);
  {
    Tensor a = randn(rng, {5, 3}), b = randn(rng, {3, 7});
    Tensor c = ops::matmul(a, b);
    ASSERT_EQ(c.shape(), (Shape{5, 7}));
    EXPECT_TRUE(close(c, ref_matmul(a.to_doubles(), b.to_doubles(), 1, 5, 3, 7, true), 1e-12, 1e-12));
  }
  {  // batched
    Tensor a = randn(rng, {2, 3, 5, 4}), b = randn(rng, {2, 3, 4, 7});
    Tensor c = ops::matmul(a, b);
    ASSERT_EQ(c.shape(), (Shape{2, 3, 5, 7}));
    EXPECT_TRUE(close(c, ref_matmul(a.to_doubles(), b.to_doubles(), 6, 5, 4, 7, false), 1e-12, 1e-12));
  }
  {  // a shared right-hand matrix
    Tensor a = randn(rng, {3, 5, 4}), b = randn(rng, {4, 7});
    Tensor c = ops::matmul(a, b);
    ASSERT_EQ(c.shape(), (Shape{3, 5, 7}));
    EXPECT_TRUE(close(c, ref_matmul(a.to_doubles(), b.to_doubles(), 3, 5, 4, 7, true), 1e-12, 1e-12));
  }
  {  // transposed views
    Tensor a = randn(rng, {2, 4, 5}).transpose(1, 2), b = randn(rng, {2, 7, 4}).transpose(1, 2);
    Tensor c = ops::matmul(a, b);
    EXPECT_TRUE(close(c, ref_matmul(a.to_doubles(), b.to_doubles(), 2, 5, 4, 7, false), 1e-12, 1e-12));
  }
  {  // larger, f64 and f32
    Tensor a = randn(rng, {3, 67, 129}), b = randn(rng, {3, 129, 45});
    V ref = ref_matmul(a.to_doubles(), b.to_doubles(), 3, 67, 129, 45, false);
    EXPECT_TRUE(close(ops::matmul(a, b), ref, 1e-10, 1e-12));
    Tensor a32 = a.to(DType::f32), b32 = b.to(DType::f32);
    EXPECT_TRUE(close(ops::matmul(a32, b32), ref_matmul(a32.to_doubles(), b32.to_doubles(), 3, 67, 129, 45, false),
                      1e-4, 1e-5));
  }
}

// ---- model ops --------------------------------------------------------------------------------------

TEST(Forward, RmsNorm) {
  Rng rng(4);
  Tensor x = randn(rng, {3, 5, 7}, DType::f64, 2.0), w = randn(rng, {7});
  EXPECT_TRUE(close(ops::rms_norm(x, w, 1e-5), ref_rms_norm(x.to_doubles(), w.to_doubles(), 7, 1e-5), 1e-12, 1e-12));
  // eps matters for small inputs.
  Tensor xs = randn(rng, {4, 9}, DType::f64, 0.01), ws = randn(rng, {9});
  EXPECT_TRUE(close(ops::rms_norm(xs, ws, 1e-3), ref_rms_norm(xs.to_doubles(), ws.to_doubles(), 9, 1e-3), 1e-12, 1e-12));
  // Wide rows, f32 against the f64 reference.
  Tensor xl = randn(rng, {67, 513}), wl = randn(rng, {513});
  Tensor y32 = ops::rms_norm(xl.to(DType::f32), wl.to(DType::f32), 1e-6);
  EXPECT_EQ(y32.dtype(), DType::f32);
  EXPECT_TRUE(close(y32, ref_rms_norm(xl.to(DType::f32).to_doubles(), wl.to(DType::f32).to_doubles(), 513, 1e-6),
                    1e-5, 1e-5));
}

TEST(Forward, Rope) {
  Rng rng(5);
  struct Case {
    Shape s;
    int rot;
    double theta;
    int64_t pos0;
  };
  for (const Case& c : {Case{{2, 7, 3, 8}, 6, 10000.0, 5}, Case{{1, 5, 2, 4}, 4, 10000.0, 0},
                        Case{{2, 3, 1, 10}, 2, 500000.0, 1000}, Case{{1, 9, 2, 16}, 16, 100.0, 3}}) {
    SCOPED_TRACE(shape_str(c.s) + " rot " + std::to_string(c.rot) + " pos0 " + std::to_string(c.pos0));
    Tensor x = randn(rng, c.s);
    Tensor y = ops::rope(x, c.rot, c.theta, c.pos0);
    ASSERT_EQ(y.shape(), c.s);
    V ref = ref_rope(x.to_doubles(), c.s, c.rot, c.theta, c.pos0);
    EXPECT_TRUE(close(y, ref, 1e-12, 1e-12));
    Tensor y32 = ops::rope(x.to(DType::f32), c.rot, c.theta, c.pos0);
    EXPECT_TRUE(close(y32, ref, 1e-5, 1e-5));
  }
}

TEST(Forward, RopeIsARelativeRotation) {
  // The same q and k vectors at every position: after RoPE, q_t . k_s depends only on t - s.
  Rng rng(6);
  const int64_t T = 9, D = 8;
  V qv = randn_values(rng, D), kv = randn_values(rng, D);
  V qs, ks;
  for (int64_t t = 0; t < T; ++t) {
    qs.insert(qs.end(), qv.begin(), qv.end());
    ks.insert(ks.end(), kv.begin(), kv.end());
  }
  V q = ops::rope(Tensor::from_doubles(qs, {1, T, 1, D}, DType::f64), 8, 10000.0, 4).to_doubles();
  V k = ops::rope(Tensor::from_doubles(ks, {1, T, 1, D}, DType::f64), 8, 10000.0, 4).to_doubles();
  auto dot = [&](int64_t t, int64_t s) {
    double acc = 0;
    for (int64_t j = 0; j < D; ++j) acc += q[t * D + j] * k[s * D + j];
    return acc;
  };
  for (int64_t t = 0; t + 2 < T; ++t) {
    EXPECT_NEAR(dot(t + 2, t), dot(2, 0), 1e-10);
    EXPECT_NEAR(dot(t, t), dot(0, 0), 1e-10);
  }
  // And not trivially: different offsets give different products.
  EXPECT_GT(std::fabs(dot(2, 0) - dot(0, 0)), 1e-6);
}

TEST(Forward, Softmax) {
  Rng rng(7);
  Tensor x = randn(rng, {3, 5, 7}, DType::f64, 3.0);
  Tensor y = ops::softmax(x);
  EXPECT_TRUE(close(y, ref_softmax(x.to_doubles(), 7), 1e-14, 1e-12));
  // Large logits: no overflow; shifting by a constant changes nothing.
  V big = x.to_doubles();
  for (double& e : big) e += 1000.0;
  Tensor yb = ops::softmax(Tensor::from_doubles(big, {3, 5, 7}, DType::f64));
  EXPECT_TRUE(close(yb, y.to_doubles(), 1e-12, 1e-9));
  Tensor yb32 = ops::softmax(Tensor::from_doubles(big, {3, 5, 7}, DType::f32));
  EXPECT_TRUE(close(yb32, ref_softmax(Tensor::from_doubles(big, {3, 5, 7}, DType::f32).to_doubles(), 7), 1e-6, 1e-5));
  // Non-contiguous input and a wide row (parallel path).
  Tensor xt = randn(rng, {7, 5}).transpose(0, 1);
  EXPECT_TRUE(close(ops::softmax(xt), ref_softmax(xt.to_doubles(), 7), 1e-14, 1e-12));
  Tensor xl = randn(rng, {129, 1031}, DType::f64, 2.0);
  EXPECT_TRUE(close(ops::softmax(xl), ref_softmax(xl.to_doubles(), 1031), 1e-14, 1e-11));
  EXPECT_TRUE(close(ops::softmax(xl.to(DType::f32)), ref_softmax(xl.to(DType::f32).to_doubles(), 1031), 1e-7, 1e-5));
}

void check_attention_forward(const AttnDims& a, uint64_t seed, double scale = -1) {
  SCOPED_TRACE("B=" + std::to_string(a.B) + " T=" + std::to_string(a.T) + " S=" + std::to_string(a.S) +
               " n_q=" + std::to_string(a.n_q) + " n_k=" + std::to_string(a.n_k) + " n_v=" + std::to_string(a.n_v) +
               " d_qk=" + std::to_string(a.d_qk) + " d_v=" + std::to_string(a.d_v));
  Rng rng(seed);
  const double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(a.d_qk));
  Tensor q = randn(rng, {a.B, a.T, a.n_q, a.d_qk}, DType::f64, 1.5);
  Tensor k = randn(rng, {a.B, a.S, a.n_k, a.d_qk}, DType::f64, 1.5);
  Tensor v = randn(rng, {a.B, a.S, a.n_v, a.d_v});
  Tensor o = ops::attention(q, k, v, s);
  ASSERT_EQ(o.shape(), (Shape{a.B, a.T, a.n_q, a.d_v}));
  V ref = ref_attention(q.to_doubles(), k.to_doubles(), v.to_doubles(), a, s);
  EXPECT_TRUE(close(o, ref, 1e-12, 1e-10));
  Tensor o32 = ops::attention(q.to(DType::f32), k.to(DType::f32), v.to(DType::f32), s);
  EXPECT_EQ(o32.dtype(), DType::f32);
  EXPECT_TRUE(close(o32, ref, 2e-5, 1e-5));
}

TEST(Forward, Attention) {
  check_attention_forward({2, 7, 7, 4, 1, 1, 5, 7}, 10);
  check_attention_forward({2, 7, 7, 6, 3, 2, 4, 4}, 11);
  check_attention_forward({2, 7, 7, 3, 3, 3, 6, 2}, 12);
  check_attention_forward({1, 3, 7, 4, 1, 1, 5, 7}, 13);   // decode, 4 cached tokens
  check_attention_forward({2, 1, 9, 6, 3, 2, 4, 4}, 14);   // one new token
  check_attention_forward({1, 5, 5, 6, 2, 6, 3, 5}, 15);
  check_attention_forward({1, 5, 5, 2, 2, 1, 3, 3}, 16, 0.9);
  // Larger: many positions (tiling, parallel paths), wide heads.
  check_attention_forward({2, 67, 67, 4, 2, 1, 16, 24}, 17);
  check_attention_forward({1, 33, 97, 5, 1, 5, 64, 32}, 18);
}

TEST(Forward, AttentionMaskAndHeadSharing) {
  // Structural checks that do not go through the reference loop.
  Rng rng(19);
  const int64_t T = 5, n_q = 4, d = 3;
  Tensor q = randn(rng, {1, T, n_q, d}), k = randn(rng, {1, T, 2, d}), v = randn(rng, {1, T, 1, d});
  V o = ops::attention(q, k, v, 0.5).to_doubles();
  V vv = v.to_doubles();
  // The first query sees only key 0: its output is v[0] for every head.
  for (int64_t i = 0; i < n_q; ++i)
    for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(o[i * d + j], vv[j], 1e-14);
  // Changing a future key/value does not change earlier outputs (causality).
  V kv = k.to_doubles(), vv2 = vv;
  for (int64_t j = 0; j < 2 * d; ++j) kv[(T - 1) * 2 * d + j] += 5.0;
  for (int64_t j = 0; j < d; ++j) vv2[(T - 1) * d + j] -= 3.0;
  V o2 = ops::attention(q, Tensor::from_doubles(kv, {1, T, 2, d}, DType::f64),
                        Tensor::from_doubles(vv2, {1, T, 1, d}, DType::f64), 0.5)
             .to_doubles();
  for (int64_t i = 0; i < (T - 1) * n_q * d; ++i) EXPECT_EQ(o[i], o2[i]) << i;
  bool last_changed = false;
  for (int64_t i = (T - 1) * n_q * d; i < T * n_q * d; ++i) last_changed |= o[i] != o2[i];
  EXPECT_TRUE(last_changed);
  // Query heads 0,1 share key head 0 and 2,3 share key head 1: equal queries give equal outputs
  // within a pair only.
  V qv = q.to_doubles();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < d; ++j) {
      qv[(t * n_q + 1) * d + j] = qv[(t * n_q + 0) * d + j];
      qv[(t * n_q + 2) * d + j] = qv[(t * n_q + 0) * d + j];
    }
  V o3 = ops::attention(Tensor::from_doubles(qv, {1, T, n_q, d}, DType::f64), k, v, 0.5).to_doubles();
  double diff01 = 0, diff02 = 0;
  for (int64_t t = 1; t < T; ++t)
    for (int64_t j = 0; j < d; ++j) {
      diff01 = std::max(diff01, std::fabs(o3[(t * n_q + 0) * d + j] - o3[(t * n_q + 1) * d + j]));
      diff02 = std::max(diff02, std::fabs(o3[(t * n_q + 0) * d + j] - o3[(t * n_q + 2) * d + j]));
    }
  EXPECT_LT(diff01, 1e-14);
  EXPECT_GT(diff02, 1e-6);
}

TEST(Forward, CrossEntropy) {
  Rng rng(20);
  const int64_t N = 7, Vn = 13;
  Tensor x = randn(rng, {N, Vn}, DType::f64, 2.0);
  std::vector<int64_t> t = {3, 0, 12, -1, 7, 3, -1};
  Tensor tg = Tensor::from_vector(t, {N});
  Tensor loss = ops::cross_entropy(x, tg);
  EXPECT_EQ(loss.numel(), 1);
  EXPECT_NEAR(loss.item(), ref_cross_entropy(x.to_doubles(), t, Vn, -1), 1e-12);
  EXPECT_NEAR(ops::cross_entropy(x, tg.to(DType::i32)).item(), ref_cross_entropy(x.to_doubles(), t, Vn, -1), 1e-12);
  // A custom ignore index: -1 would now be out of range, so use in-range targets.
  std::vector<int64_t> t2 = {3, 0, 12, 5, 7, 5, 1};
  EXPECT_NEAR(ops::cross_entropy(x, Tensor::from_vector(t2, {N}), 5).item(), ref_cross_entropy(x.to_doubles(), t2, Vn, 5),
              1e-12);
  EXPECT_NEAR(ops::cross_entropy(x, Tensor::from_vector(t2, {N}), -100).item(),
              ref_cross_entropy(x.to_doubles(), t2, Vn, -100), 1e-12);
  // Large logits: log-sum-exp must not overflow.
  V big = x.to_doubles();
  for (double& e : big) e = e * 100.0 + 1000.0;
  EXPECT_NEAR(ops::cross_entropy(Tensor::from_doubles(big, {N, Vn}, DType::f64), tg).item(),
              ref_cross_entropy(big, t, Vn, -1), 1e-9);
  double l32 = ops::cross_entropy(Tensor::from_doubles(big, {N, Vn}, DType::f32), tg).item();
  EXPECT_TRUE(std::isfinite(l32));
  // Every target ignored (a batch of padding): a zero loss and a zero gradient, never NaN.
  Tensor xa = x.detach().clone();
  xa.set_requires_grad(true);
  Tensor la = ops::cross_entropy(xa, Tensor::full({N}, -1.0, DType::i64));
  EXPECT_EQ(la.item(), 0.0);
  la.backward();
  EXPECT_TRUE(close(xa.grad(), V(N * Vn, 0.0), 0.0));
  // Many rows and a wide vocabulary, f64 and f32.
  const int64_t N2 = 301, V2 = 517;
  Tensor xl = randn(rng, {N2, V2}, DType::f64, 3.0);
  Tensor tl = randint(rng, {N2}, 0, V2);
  std::vector<int64_t> tlv(tl.data<int64_t>(), tl.data<int64_t>() + N2);
  const double ref = ref_cross_entropy(xl.to_doubles(), tlv, V2, -1);
  EXPECT_NEAR(ops::cross_entropy(xl, tl).item(), ref, 1e-11);
  EXPECT_NEAR(ops::cross_entropy(xl.to(DType::f32), tl).item(),
              ref_cross_entropy(xl.to(DType::f32).to_doubles(), tlv, V2, -1), 1e-5);
}

TEST(Forward, Embedding) {
  Rng rng(21);
  Tensor w = randn(rng, {7, 5});
  std::vector<int64_t> ids = {6, 0, 3, 3, 1, 6};
  V wv = w.to_doubles(), ref;
  for (int64_t id : ids) ref.insert(ref.end(), wv.begin() + id * 5, wv.begin() + id * 5 + 5);
  Tensor y = ops::embedding(w, Tensor::from_vector(ids, {2, 3}));
  ASSERT_EQ(y.shape(), (Shape{2, 3, 5}));
  EXPECT_TRUE(close(y, ref, 0.0));
  Tensor y32 = ops::embedding(w.to(DType::f32), Tensor::from_vector(ids, {6}).to(DType::i32));
  ASSERT_EQ(y32.shape(), (Shape{6, 5}));
  EXPECT_EQ(y32.dtype(), DType::f32);
  EXPECT_TRUE(close(y32, ref, 1e-6, 1e-6));
}

// ---- elementwise and broadcasting ----------------------------------------------------------------------

TEST(Forward, Broadcast) {
  Rng rng(22);
  Tensor a = randn(rng, {3, 1, 5}), b = randn(rng, {4, 1});
  V av = a.to_doubles(), bv = b.to_doubles();
  V add_ref, sub_ref, mul_ref;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 5; ++k) {
        add_ref.push_back(av[i * 5 + k] + bv[j]);
        sub_ref.push_back(av[i * 5 + k] - bv[j]);
        mul_ref.push_back(av[i * 5 + k] * bv[j]);
      }
  Tensor y = ops::add(a, b);
  ASSERT_EQ(y.shape(), (Shape{3, 4, 5}));
  EXPECT_TRUE(close(y, add_ref, 0.0));
  EXPECT_TRUE(close(ops::sub(a, b), sub_ref, 0.0));
  EXPECT_TRUE(close(ops::mul(a, b), mul_ref, 0.0));
  // b - a: the broadcast the other way round.
  V rsub = sub_ref;
  for (double& e : rsub) e = -e;
  EXPECT_TRUE(close(ops::sub(b, a), rsub, 0.0));
  // [5] against [3, 5], and [1] against anything.
  Tensor m = randn(rng, {3, 5}), r = randn(rng, {5}), one = randn(rng, {1});
  V mv = m.to_doubles(), rv = r.to_doubles(), ref1, ref2;
  for (int i = 0; i < 15; ++i) {
    ref1.push_back(mv[i] * rv[i % 5]);
    ref2.push_back(mv[i] + one.item());
  }
  EXPECT_TRUE(close(ops::mul(m, r), ref1, 0.0));
  EXPECT_TRUE(close(ops::mul(r, m), ref1, 0.0));
  EXPECT_TRUE(close(ops::add(one, m), ref2, 0.0));
  // Non-contiguous operands.
  Tensor mt = randn(rng, {5, 3}).transpose(0, 1);
  V mtv = mt.to_doubles(), ref3;
  for (int i = 0; i < 15; ++i) ref3.push_back(mtv[i] + mv[i]);
  EXPECT_TRUE(close(ops::add(mt, m), ref3, 0.0));
  // Shapes that do not broadcast, and mixed dtypes, are errors.
  EXPECT_THROW(ops::add(randn(rng, {3, 5}), randn(rng, {4, 5})), gta::Error);
  EXPECT_THROW(ops::mul(randn(rng, {3}), randn(rng, {3}, DType::f32)), gta::Error);
}

TEST(Forward, SumTo) {
  Rng rng(23);
  Tensor g = randn(rng, {3, 4, 5});
  V gv = g.to_doubles();
  auto ref = [&](const Shape& target) {
    // target broadcast to [3, 4, 5] (right-aligned); sum g over the broadcast positions.
    Shape t3(3 - target.size(), 1);
    t3.insert(t3.end(), target.begin(), target.end());
    V out(shape_numel(target), 0.0);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j)
        for (int k = 0; k < 5; ++k) {
          int64_t o = ((t3[0] == 1 ? 0 : i) * t3[1] + (t3[1] == 1 ? 0 : j)) * t3[2] + (t3[2] == 1 ? 0 : k);
          out[o] += gv[(i * 4 + j) * 5 + k];
        }
    return out;
  };
  for (const Shape& s : {Shape{4, 1}, Shape{1, 5}, Shape{3, 1, 5}, Shape{5}, Shape{1}, Shape{3, 4, 1}, Shape{1, 1, 1}}) {
    SCOPED_TRACE(shape_str(s));
    Tensor r = ops::sum_to(g, s);
    ASSERT_EQ(r.shape(), s);
    EXPECT_TRUE(close(r, ref(s), 1e-13));
  }
  EXPECT_TRUE(close(ops::sum_to(g, {3, 4, 5}), gv, 0.0));
  // From a non-contiguous gradient.
  Tensor gt = randn(rng, {5, 3}).transpose(0, 1);
  V gtv = gt.to_doubles(), col(5, 0.0);
  for (int i = 0; i < 15; ++i) col[i % 5] += gtv[i];
  EXPECT_TRUE(close(ops::sum_to(gt, {5}), col, 1e-13));
}

TEST(Forward, Elementwise) {
  Rng rng(24);
  // Large enough for the parallel paths; also small.
  for (int64_t n : {int64_t{7}, int64_t{40009}}) {
    Tensor x = randn(rng, {n}, DType::f64, 3.0), z = randn(rng, {n});
    V xv = x.to_doubles(), zv = z.to_doubles(), sg, sl, sc, ad, mu;
    for (int64_t i = 0; i < n; ++i) {
      double s = 1.0 / (1.0 + std::exp(-xv[i]));
      sg.push_back(s);
      sl.push_back(xv[i] * s);
      sc.push_back(xv[i] * -2.5);
      ad.push_back(xv[i] + zv[i]);
      mu.push_back(xv[i] * zv[i]);
    }
    EXPECT_TRUE(close(ops::sigmoid(x), sg, 1e-15, 1e-14));
    EXPECT_TRUE(close(ops::silu(x), sl, 1e-15, 1e-14));
    EXPECT_TRUE(close(ops::scale(x, -2.5), sc, 0.0));
    EXPECT_TRUE(close(ops::add(x, z), ad, 0.0));
    EXPECT_TRUE(close(ops::mul(x, z), mu, 0.0));
    EXPECT_TRUE(close(ops::silu(x.to(DType::f32)), sl, 1e-6, 1e-6));
    EXPECT_TRUE(close(ops::sigmoid(x.to(DType::f32)), sg, 1e-6, 1e-6));
  }
  // Large broadcast: [201, 1, 3] * [211, 1] -> [201, 211, 3].
  Tensor a = randn(rng, {201, 1, 3}), b = randn(rng, {211, 1});
  V av = a.to_doubles(), bv = b.to_doubles(), ref;
  for (int i = 0; i < 201; ++i)
    for (int j = 0; j < 211; ++j)
      for (int k = 0; k < 3; ++k) ref.push_back(av[i * 3 + k] * bv[j]);
  EXPECT_TRUE(close(ops::mul(a, b), ref, 0.0));
  // Extreme inputs stay finite.
  Tensor ext = Tensor::from_doubles({-1000.0, -50.0, 0.0, 50.0, 1000.0}, {5}, DType::f64);
  EXPECT_TRUE(close(ops::sigmoid(ext), {0.0, 1.9287498479639178e-22, 0.5, 1.0, 1.0}, 1e-30, 1e-12));
  EXPECT_TRUE(close(ops::silu(ext), {-0.0, -9.643749239819589e-21, 0.0, 50.0, 1000.0}, 1e-30, 1e-12));
}

TEST(Forward, SumMean) {
  Rng rng(25);
  Tensor x = randn(rng, {100003});
  V xv = x.to_doubles();
  long double acc = 0;
  for (double e : xv) acc += e;
  Tensor s = ops::sum(x);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_NEAR(s.item(), static_cast<double>(acc), 1e-9);
  EXPECT_NEAR(ops::mean(x).item(), static_cast<double>(acc / xv.size()), 1e-13);
  Tensor x32 = x.to(DType::f32);
  long double acc32 = 0;
  for (double e : x32.to_doubles()) acc32 += e;
  EXPECT_NEAR(ops::sum(x32).item(), static_cast<double>(acc32), 2e-2);
  // Small, non-contiguous.
  Tensor t = randn(rng, {3, 5}).transpose(0, 1);
  V tv = t.to_doubles();
  EXPECT_NEAR(ops::sum(t).item(), std::accumulate(tv.begin(), tv.end(), 0.0), 1e-13);
  EXPECT_NEAR(ops::mean(t).item(), std::accumulate(tv.begin(), tv.end(), 0.0) / 15, 1e-13);
}

TEST(Forward, Cat) {
  Rng rng(26);
  Tensor a = randn(rng, {2, 3, 5}), b = randn(rng, {2, 1, 5}), c = randn(rng, {2, 4, 5});
  Tensor y = ops::cat({a, b, c}, 1);
  ASSERT_EQ(y.shape(), (Shape{2, 8, 5}));
  V av = a.to_doubles(), bv = b.to_doubles(), cv = c.to_doubles(), ref;
  for (int i = 0; i < 2; ++i) {
    ref.insert(ref.end(), av.begin() + i * 15, av.begin() + (i + 1) * 15);
    ref.insert(ref.end(), bv.begin() + i * 5, bv.begin() + (i + 1) * 5);
    ref.insert(ref.end(), cv.begin() + i * 20, cv.begin() + (i + 1) * 20);
  }
  EXPECT_TRUE(close(y, ref, 0.0));
  // Last dim, with a negative index and a non-contiguous part.
  Tensor p = randn(rng, {3, 2}), q = randn(rng, {2, 3}).transpose(0, 1);
  Tensor z = ops::cat({p, q}, -1);
  ASSERT_EQ(z.shape(), (Shape{3, 4}));
  V pv = p.to_doubles(), qv = q.to_doubles(), ref2;
  for (int i = 0; i < 3; ++i) {
    ref2.insert(ref2.end(), pv.begin() + i * 2, pv.begin() + i * 2 + 2);
    ref2.insert(ref2.end(), qv.begin() + i * 2, qv.begin() + i * 2 + 2);
  }
  EXPECT_TRUE(close(z, ref2, 0.0));
  // Dim 0.
  Tensor d0 = ops::cat({p, p}, 0);
  V ref3 = pv;
  ref3.insert(ref3.end(), pv.begin(), pv.end());
  EXPECT_TRUE(close(d0, ref3, 0.0));
  EXPECT_THROW(ops::cat({a, randn(rng, {2, 3, 4})}, 1), gta::Error);
}

TEST(Forward, InPlace) {
  Rng rng(27);
  Tensor d = randn(rng, {3, 5}), s = randn(rng, {3, 5});
  V dv = d.to_doubles(), sv = s.to_doubles();
  ops::add_(d, s);
  for (int i = 0; i < 15; ++i) dv[i] += sv[i];
  EXPECT_TRUE(close(d, dv, 0.0));
  ops::fill_(d, 2.5);
  EXPECT_TRUE(close(d, V(15, 2.5), 0.0));
}

TEST(Forward, BadInputsThrow) {
  Rng rng(28);
  EXPECT_THROW(ops::linear(randn(rng, {3, 5}), randn(rng, {7, 4})), gta::Error);
  EXPECT_THROW(ops::linear(randn(rng, {3, 5}), randn(rng, {7, 5}), randn(rng, {6})), gta::Error);
  EXPECT_THROW(ops::matmul(randn(rng, {3, 5}), randn(rng, {4, 7})), gta::Error);
  EXPECT_THROW(ops::matmul(randn(rng, {2, 3, 5}), randn(rng, {3, 5, 7})), gta::Error);
  EXPECT_THROW(ops::rms_norm(randn(rng, {3, 5}), randn(rng, {4}), 1e-5), gta::Error);
  // add_rms_norm: the two summands must match in shape and dtype; the weight must fit.
  EXPECT_THROW(ops::add_rms_norm(randn(rng, {3, 5}), randn(rng, {5}), randn(rng, {5}), 1e-5), gta::Error);
  EXPECT_THROW(ops::add_rms_norm(randn(rng, {3, 5}), randn(rng, {3, 5}, DType::f32), randn(rng, {5}), 1e-5),
               gta::Error);
  EXPECT_THROW(ops::add_rms_norm(randn(rng, {3, 5}), randn(rng, {3, 5}), randn(rng, {4}), 1e-5), gta::Error);
  // n_q must be a multiple of n_k and n_v; widths must agree.
  EXPECT_THROW(ops::attention(randn(rng, {1, 3, 4, 2}), randn(rng, {1, 3, 3, 2}), randn(rng, {1, 3, 1, 2}), 1.0),
               gta::Error);
  EXPECT_THROW(ops::attention(randn(rng, {1, 3, 4, 2}), randn(rng, {1, 3, 2, 2}), randn(rng, {1, 3, 3, 2}), 1.0),
               gta::Error);
  EXPECT_THROW(ops::attention(randn(rng, {1, 3, 4, 2}), randn(rng, {1, 3, 2, 3}), randn(rng, {1, 3, 2, 2}), 1.0),
               gta::Error);
  EXPECT_THROW(ops::attention(randn(rng, {1, 4, 2, 2}), randn(rng, {1, 3, 2, 2}), randn(rng, {1, 3, 2, 2}), 1.0),
               gta::Error);  // more queries than keys
  // RoPE: the rotary width must be even and fit the head.
  EXPECT_THROW(ops::rope(randn(rng, {1, 3, 2, 8}), 5, 10000.0), gta::Error);
  EXPECT_THROW(ops::rope(randn(rng, {1, 3, 2, 8}), 10, 10000.0), gta::Error);
  // Ids and targets out of range.
  EXPECT_THROW(ops::embedding(randn(rng, {7, 3}), Tensor::from_vector(std::vector<int64_t>{0, 7}, {2})), gta::Error);
  EXPECT_THROW(ops::cross_entropy(randn(rng, {2, 5}), Tensor::from_vector(std::vector<int64_t>{0, 5}, {2})),
               gta::Error);
}

}  // namespace
