// GTA's value decoder and output gate for one token per sequence (decoding), in one kernel:
//
//   out[b, i w + j] = sigmoid(g[b, i w + j]) (o[b, i, j mod d_l] + sum_k o[b, i, k] Wb_i[k, j])
//
// for b < B, query group i < n_q, j < w = e d_l: the tile of o plus its per-group decoding, gated.
// o [B, n_q, d_l] is the attention output over the latent cache, Wb is v_b_proj's memory read as
// [n_q, d_l, w], g [B, n_q w] the gate's pre-activation (x Wg + bg); bf16 storage, fp32
// arithmetic, one rounding at the end. The unfused form is five kernels (permute, batched matmul,
// add, sigmoid, multiply); a decode step is bound by its kernel count. Plain C++ declarations;
// the launcher runs on the current device's stream.
#pragma once
#include <cstdint>

namespace gta::kernels {

struct GtaValueDecodeArgs {
  int64_t B = 0, nq = 0, dl = 0, e = 0;
  const void* o = nullptr;   // [B, n_q, d_l] contiguous
  const void* wb = nullptr;  // [n_q, d_l, e d_l] contiguous
  const void* g = nullptr;   // [B, n_q e d_l] contiguous
  void* out = nullptr;       // [B, n_q e d_l] contiguous
};

// Whether the kernel takes these sizes (o's row in shared memory: d_l <= 1024).
bool gta_value_decode_supported(int64_t dl, int64_t e);
void gta_value_decode(const GtaValueDecodeArgs& a);

}  // namespace gta::kernels
