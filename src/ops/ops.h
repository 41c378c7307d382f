// The op list. Every op is forward + backward (recorded for autograd when an input requires a
// gradient), works on f32 and f64 (bf16 where noted), and dispatches on the device of its
// inputs; the CPU implementation is the reference every other backend is tested against.
// Shapes use the convention [B, T, heads, width] for attention tensors.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace gta::ops {

// ---- elementwise (numpy broadcasting for binary ops) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& a, double s);  // a * s
Tensor silu(const Tensor& x);             // x * sigmoid(x)
Tensor sigmoid(const Tensor& x);
Tensor swiglu(const Tensor& a, const Tensor& b);  // silu(a) * b, one fused op (same shapes)
// In place, no autograd: dst += src (same shape), dst = 0.
void add_(const Tensor& dst, const Tensor& src);
void fill_(const Tensor& dst, double value);
// Sums `g` over broadcast dimensions down to `shape` (the backward of broadcasting).
Tensor sum_to(const Tensor& g, const Shape& shape);

// ---- reductions ----
Tensor sum(const Tensor& x);   // scalar (shape [1])
Tensor mean(const Tensor& x);  // scalar (shape [1])

// ---- linear algebra (OpenBLAS on the CPU) ----
// y = x W^T (+ b): x [..., in], W [out, in], b [out] or undefined -> [..., out].
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());
// Batched matmul: a [..., M, K] @ b [..., K, N] with identical leading dims, or b [K, N].
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- joins ----
Tensor cat(const std::vector<Tensor>& xs, int dim);

// ---- model ops ----
// Gathers rows of weight [V, d] at integer ids (i32 or i64, any shape) -> [..., d].
Tensor embedding(const Tensor& weight, const Tensor& ids);
// y = x / sqrt(mean(x^2, last dim) + eps) * w.
Tensor rms_norm(const Tensor& x, const Tensor& w, double eps);
// {h, y} with h = x + res (same shapes) and y = rms_norm(h, w, eps), in one pass over x and res:
// a pre-norm decoder's residual add fused with the norm that reads the sum. Same math as add then
// rms_norm; the backward is fused too (dh = the norm's input gradient + the gradient of h).
std::pair<Tensor, Tensor> add_rms_norm(const Tensor& x, const Tensor& res, const Tensor& w, double eps);
// Rotate-half RoPE on the first `rot_dim` features of each head of x [B, T, H, D] at positions
// pos0 .. pos0+T-1: x*cos + rotate_half(x)*sin, inv_freq[i] = theta^(-2i/rot_dim).
Tensor rope(const Tensor& x, int rot_dim, double theta, int64_t pos0 = 0);
Tensor softmax(const Tensor& x);  // over the last dim
// The general causal attention primitive: q [B, T, n_q, d_qk], k [B, S, n_k, d_qk],
// v [B, S, n_v, d_v]; query head i reads key head i / (n_q/n_k) and value head i / (n_q/n_v);
// out [B, T, n_q, d_v] = softmax(q k^T * scale + causal mask) v. Query t sits at position
// S - T + t, so T < S is decoding with a cache of S - T earlier tokens.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
// Decoding: attention of one new token per sequence over the first `len` tokens of a KV cache
// read in place. q [B, n_q, d_qk], k_cache [B, cap, n_k, d_qk], v_cache [B, cap, n_v, d_v],
// len <= cap; out [B, n_q, d_v] equals attention(q as [B, 1, n_q, d_qk], k_cache[:, :len],
// v_cache[:, :len], scale). Inference only (no autograd). bf16 on a GPU runs the decode kernels
// (kernels/decode_attention.h) on the caches where they lie; otherwise it is attention() on the
// cached prefix.
Tensor decode_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t len, double scale);
// MLA's absorbed form on a GPU (bf16): q_lat [B, h, d_c], q_pe [B, h, d_r], latent [B, cap, 1, d_c],
// k_pe [B, cap, 1, d_r]; with r_u = rsqrt(mean(c_u^2) + eps) (the RMSNorm of the cached latent
// without its weight) and u < len:
//   s_u = scale (r_u q_lat . c_u + q_pe . k_pe_u),   out = sum_u softmax(s)_u r_u c_u   [B, h, d_c]
// decode_latent_attention_supported says whether it runs (the CUDA backend, bf16, kernel sizes).
bool decode_latent_attention_supported(const Tensor& q_lat, const Tensor& q_pe, const Tensor& latent,
                                       const Tensor& k_pe);
Tensor decode_latent_attention(const Tensor& q_lat, const Tensor& q_pe, const Tensor& latent, const Tensor& k_pe,
                               int64_t len, double scale, double eps);
// Mean cross-entropy of logits [N, V] against integer targets [N] (log-softmax fused); a
// scalar. Targets equal to ignore_index are skipped (and not counted in the mean).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -1);

}  // namespace gta::ops
