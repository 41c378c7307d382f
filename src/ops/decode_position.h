// Ops of a decode step whose position lives in device memory: `position` is a device int32 [1]
// holding the number of tokens already cached (the new token's position), read when the kernels
// run, not when they are launched, so that one CUDA-graph capture of the step replays at every
// position (infer::DecodeStep). CUDA only, inference only (no autograd); each is the op of
// ops.h named alike with the host position replaced by position[0].
#pragma once
#include "core/tensor.h"

namespace gta::ops {

// rope(x, rot_dim, theta, position[0]): x [B, T, heads, width].
Tensor rope_at(const Tensor& x, int rot_dim, double theta, const Tensor& position);
// cache[:, position[0]] = fresh[:, 0]: cache [B, capacity, heads, width] with contiguous rows,
// fresh [B, 1, heads, width] of its dtype.
void write_row_at(const Tensor& cache, const Tensor& fresh, const Tensor& position);
// decode_attention over position[0] + 1 cached tokens (at most the caches' capacity); the decode
// kernels must take the sizes (decode_attention_at_supported), there is no other path.
bool decode_attention_at_supported(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache);
Tensor decode_attention_at(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, double scale,
                           const Tensor& position);
// decode_latent_attention over position[0] + 1 cached tokens (decode_latent_attention_supported).
Tensor decode_latent_attention_at(const Tensor& q_lat, const Tensor& q_pe, const Tensor& latent, const Tensor& k_pe,
                                  double scale, double eps, const Tensor& position);
// weight[ids] for ids [B, T] (i32) read on the device only, without embedding()'s host range
// check: an id outside [0, vocab) reads row 0 instead (the caller checks ids it did not sample).
Tensor embedding_at(const Tensor& weight, const Tensor& ids);
// position[0] += n.
void advance_position(const Tensor& position, int n);

}  // namespace gta::ops
