// Decode attention: one query token per sequence against the first `len` tokens of a KV cache
// read in place (bf16 storage, fp32 arithmetic). Plain C++ declarations, no CUDA types; the
// launcher runs on the current device's stream. For batch b and query head i:
//
//   key head   kh = i / (n_q / n_k),  key_u = [k1[b, u, kh, :d_k1], k2[b, u, :d_k2]]
//   s_u   = scale (r_u q_i[:d_k1] . k1_u + q_i[d_k1:] . k2_u)        u < len
//   out_i = sum_u softmax(s)_u r_u v[b, u, (i / q_per_v) dv : (i / q_per_v + 1) dv]
//
// with r_u = 1, except for MLA's absorbed form (rms_key): r_u = rsqrt(mean(k1_u^2) + eps), the
// RMSNorm of the cached latent without its weight (the caller folds the weight into q and out),
// and v = k1 (the latent is both key and value). k2 is MLA's shared RoPE key (d_k2 = 0 for every
// other type). Every cache row is addressed by batch and token strides (elements), so the
// caches are read where they live, not copied.
//
// Flash-decoding: the context is cut into `splits` chunks; one CTA per (b, key head, chunk)
// with one warp per query head of the key group (the warps read the same key rows, which the
// L1 serves after the first), each warp an online softmax in fp32 over its chunk, 32 keys at a
// time (one key per lane, 16-byte loads); a combine kernel merges the chunks' (max, sum, output)
// per query head in a fixed order (deterministic).
#pragma once
#include <cstddef>
#include <cstdint>

namespace gta::kernels {

struct DecodeCacheView {
  const void* data = nullptr;  // element (b, u, 0) at data + b * batch_stride + u * token_stride
  int64_t batch_stride = 0, token_stride = 0;
};

struct DecodeAttnArgs {
  int64_t B = 0, nq = 0, nk = 0, len = 0;
  // When set (device int32): the context is position[0] + 1 tokens, read when the kernels run
  // (CUDA-graph replay at any position); `len` is then the most it may be (the splits follow it).
  const int32_t* position = nullptr;
  int64_t dk1 = 0, dk2 = 0, dv = 0, q_per_v = 1;
  float scale = 1, eps = 0;
  bool rms_key = false;
  const void* q = nullptr;  // [B, n_q, d_k1 + d_k2] contiguous
  DecodeCacheView k1, k2, v;
  void* out = nullptr;      // [B, n_q, dv] contiguous
};

// Whether the kernel takes these sizes: widths multiples of 8 (16-byte rows), dv <= 256,
// d_k1 + d_k2 <= 1024, n_k dividing n_q, at most 32 query heads per key head.
bool decode_attention_supported(int64_t nq, int64_t nk, int64_t dk1, int64_t dk2, int64_t dv);
// Chunks of the context for B sequences of n_k key heads at `len` tokens: enough CTAs to fill
// the device twice over and chunks of at most 1024 keys (many warps in flight per SM hide the
// latency of the loads), but at least 64 keys per chunk.
int64_t decode_attention_splits(int64_t B, int64_t nk, int64_t len);
// fp32 scratch for the chunks' partial results: B n_q splits (dv + 2) floats.
size_t decode_attention_workspace_floats(const DecodeAttnArgs& a, int64_t splits);

// bf16 q, caches and out; `work` holds decode_attention_workspace_floats(a, splits) floats.
void decode_attention(const DecodeAttnArgs& a, int64_t splits, float* work);

}  // namespace gta::kernels
