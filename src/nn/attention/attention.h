// The attention layer interface and the factory that picks the type from the config once.
// Every type reduces to the causal primitive ops::attention(q, k, v) of docs/attention.md
// ("One primitive underneath").
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "nn/kv_cache.h"
#include "nn/params.h"

namespace gta::nn {

// Sees the attention maps of a layer as the inputs that make them, for analysis (gta analyze):
// q [B, T, n_maps, d_qk] and k [B, S, n_k, d_qk] after RoPE, and the score scale, so that map i
// is softmax(scale * q_i k_{i/(n_maps/n_k)}^T + causal mask). Called once per forward, before
// the attention primitive runs.
using MapProbe = std::function<void(const Tensor& q, const Tensor& k, double scale)>;

class Attention {
 public:
  virtual ~Attention() = default;
  // x [B, T, d] -> [B, T, d]. With a cache, x holds the next T tokens after cache->len cached
  // ones; their keys/values are appended and attention reads the whole prefix. A probe, when
  // given, is shown the layer's maps (see MapProbe).
  virtual Tensor forward(const Tensor& x, LayerCache* cache, const MapProbe* probe = nullptr) const = 0;
  // What one token stores in this layer's cache.
  virtual std::vector<CacheEntry> cache_layout() const = 0;
};

// Creates the attention of `cfg.attention.type` with parameters under `prefix` (e.g.
// "model.layers.3.self_attn.").
std::unique_ptr<Attention> make_attention(const config::ModelConfig& cfg, Params& p, const std::string& prefix,
                                          double std, double out_std);

// RoPE over the full width of each head when `cache` is null, else starting at cache->len.
Tensor apply_rope(const Tensor& x, int rot_dim, double theta, const LayerCache* cache);

}  // namespace gta::nn
