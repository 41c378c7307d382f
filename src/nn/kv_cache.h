// Per-layer key/value cache for decoding. Each attention type decides what it stores (see its
// cache_layout()): standard attention keeps post-RoPE keys and values, GTA keeps post-RoPE keys
// and the value latent, MLA keeps the compressed latent and the shared RoPE key. Buffers are
// [B, capacity, heads, width], filled in place as tokens arrive; a buffer that fills up is
// reallocated at twice its capacity (at most max_len), so memory follows the tokens actually
// cached rather than the longest the caller might ask for.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace gta::nn {

struct CacheEntry {
  std::string name;  // "k", "v", "latent", "k_pe", ...
  int64_t heads, width;
};

struct LayerCache {
  std::vector<Tensor> buffers;  // one per CacheEntry, [B, capacity, heads, width]
  int64_t len = 0;              // tokens already cached
  int64_t max_len = 0;          // the most tokens the buffers may grow to
  // While infer::DecodeStep captures a step as a CUDA graph: a device int32 [1] holding len, which
  // the step's one-token writes, RoPE and decode attention read when they run (so that the graph
  // replays at every position); undefined otherwise.
  Tensor position;

  // Writes `fresh` [B, T, heads, width] at positions len..len+T-1 of buffer i, growing it when
  // full (call commit(T) once every buffer is written). Decoding reads the buffers in place.
  void write(size_t i, const Tensor& fresh);
  // write(), then returns a contiguous copy of the cached prefix [B, len+T, heads, width].
  Tensor append(size_t i, const Tensor& fresh);
  void commit(int64_t t) { len += t; }
  // Grows buffer i to hold `cap` tokens (at most max_len), keeping what is cached.
  void grow(size_t i, int64_t cap);
};

class KVCache {
 public:
  // Buffers start with room for `initial_len` tokens (all of max_len when 0).
  KVCache(const std::vector<std::vector<CacheEntry>>& per_layer, int64_t batch, int64_t max_len, DType dtype,
          Device device, int64_t initial_len = 0);
  LayerCache& layer(size_t i) { return layers_[i]; }
  int64_t len() const { return layers_.empty() ? 0 : layers_[0].len; }
  int64_t max_len() const { return max_len_; }
  int64_t bytes() const;  // bytes of all buffers as allocated now
  void reset();
  void set_len(int64_t len);               // every layer's count of cached tokens
  void reserve();                          // grows every buffer to max_len now
  void set_position(const Tensor& position);  // every layer's LayerCache::position

 private:
  std::vector<LayerCache> layers_;
  int64_t max_len_;
};

}  // namespace gta::nn
