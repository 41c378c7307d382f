// The pre-norm decoder language model around any attention type:
//   x = embed(tokens)
//   per layer: x = x + Attn(RMSNorm(x));  x = x + MLP(RMSNorm(x))
//   logits = RMSNorm(x) @ E^T   (E = embed_tokens, or lm_head when embeddings are untied)
#pragma once
#include <memory>
#include <vector>

#include "config/config.h"
#include "nn/attention/attention.h"
#include "nn/kv_cache.h"
#include "nn/layers.h"
#include "nn/params.h"

namespace gta::nn {

// A MapProbe told which layer it sees (0-based).
using LayerMapProbe = std::function<void(int layer, const Tensor& q, const Tensor& k, double scale)>;

class Model {
 public:
  // Parameters are initialised from `seed`: weights N(0, 0.02), output projections of each
  // residual branch N(0, 0.02/sqrt(2 n_layers)), norms 1, biases 0.
  Model(const config::ModelConfig& cfg, DType dtype = DType::f32, uint64_t seed = 0);

  // tokens [B, T] (i32) -> logits [B, T, vocab]. With a cache, tokens continue the cached ones.
  // A probe, when given, is shown every layer's attention maps (nn::MapProbe) with the layer index.
  Tensor forward(const Tensor& tokens, KVCache* cache = nullptr, const LayerMapProbe* probe = nullptr) const;
  // Mean next-token cross-entropy of tokens [B, T+1]: inputs [:, :-1], targets [:, 1:].
  Tensor loss(const Tensor& tokens) const;

  KVCache make_cache(int64_t batch, int64_t max_len, int64_t initial_len = 0) const;  // see KVCache
  // What one token stores in each layer's cache (Attention::cache_layout of every layer).
  std::vector<std::vector<CacheEntry>> cache_layout() const;
  const config::ModelConfig& config() const { return cfg_; }
  Params& params() { return params_; }
  const Params& params() const { return params_; }

 private:
  struct Block {
    RMSNorm attn_norm, mlp_norm;
    std::unique_ptr<Attention> attn;
    MLP mlp;
  };
  config::ModelConfig cfg_;
  Rng init_rng_;
  Params params_;
  Tensor embed_, lm_head_;
  std::vector<Block> blocks_;
  RMSNorm final_norm_;
};

// Splits tokens [B, T+1] into inputs [B, T] and targets [B*T] (both contiguous i32).
std::pair<Tensor, Tensor> split_inputs_targets(const Tensor& tokens);

}  // namespace gta::nn
