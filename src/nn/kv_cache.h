// Per-layer key/value cache for decoding. Each attention type decides what it stores (see its
// cache_layout()): standard attention keeps post-RoPE keys and values, GTA keeps post-RoPE keys
// and the value latent, MLA keeps the compressed latent and the shared RoPE key. Buffers are
// allocated once at [B, max_len, heads, width] and filled in place as tokens arrive.
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
  std::vector<Tensor> buffers;  // one per CacheEntry, [B, max_len, heads, width]
  int64_t len = 0;              // tokens already cached

  // Writes `fresh` [B, T, heads, width] at positions len..len+T-1 of buffer i and returns the
  // cached prefix [B, len+T, heads, width] (call commit(T) once every buffer is appended).
  Tensor append(size_t i, const Tensor& fresh);
  void commit(int64_t t) { len += t; }
};

class KVCache {
 public:
  KVCache(const std::vector<std::vector<CacheEntry>>& per_layer, int64_t batch, int64_t max_len, DType dtype,
          Device device);
  LayerCache& layer(size_t i) { return layers_[i]; }
  int64_t len() const { return layers_.empty() ? 0 : layers_[0].len; }
  int64_t max_len() const { return max_len_; }
  int64_t bytes() const;  // allocated bytes of all buffers
  void reset();

 private:
  std::vector<LayerCache> layers_;
  int64_t max_len_;
};

}  // namespace gta::nn
