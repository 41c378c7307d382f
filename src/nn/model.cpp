#include "nn/model.h"

#include <cmath>
#include <tuple>

#include "core/error.h"
#include "ops/decode_position.h"
#include "ops/ops.h"

namespace gta::nn {

Model::Model(const config::ModelConfig& cfg, DType dtype, uint64_t seed)
    : cfg_(cfg), init_rng_(seed), params_(dtype, &init_rng_) {
  cfg_.validate();
  GTA_CHECK(cfg_.vocab_size > 0, "model.vocab_size must be set (> 0) before building the model");
  const int64_t d = cfg_.d_model;
  const double std = 0.02, out_std = 0.02 / std::sqrt(2.0 * cfg_.n_layers);
  embed_ = params_.add("model.embed_tokens.weight", {cfg_.vocab_size, d}, Init::normal, std);
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    Block b;
    b.attn_norm = RMSNorm(params_, pre + "input_layernorm", d, cfg_.norm_eps);
    b.attn = make_attention(cfg_, params_, pre + "self_attn.", std, out_std);
    b.mlp_norm = RMSNorm(params_, pre + "post_attention_layernorm", d, cfg_.norm_eps);
    b.mlp = MLP(params_, pre + "mlp.", d, cfg_.d_ff, std, out_std);
    blocks_.push_back(std::move(b));
  }
  final_norm_ = RMSNorm(params_, "model.norm", d, cfg_.norm_eps);
  lm_head_ = cfg_.tie_embeddings ? embed_ : params_.add("lm_head.weight", {cfg_.vocab_size, d}, Init::normal, std);
}

Tensor Model::forward(const Tensor& tokens, KVCache* cache, const LayerMapProbe* probe) const {
  GTA_CHECK(tokens.ndim() == 2, "model input must be tokens [B, T], got {}", tokens.str());
  // x is the residual stream, `normed` the norm of it the next branch reads. Every residual add is
  // fused with the norm that follows it (RMSNorm::add_norm): after attention the block's mlp_norm,
  // after the MLP the next block's attn_norm, or the final norm after the last block.
  // A decode step at a device position (infer::DecodeStep's CUDA graph) reads its ids on the
  // device only: embedding()'s range check reads them on the host, which a graph cannot replay.
  const bool device_position = cache && !blocks_.empty() && cache->layer(0).position.defined();
  Tensor x = device_position ? ops::embedding_at(embed_, tokens) : ops::embedding(embed_, tokens);
  Tensor normed = blocks_.empty() ? final_norm_(x) : blocks_[0].attn_norm(x);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const Block& b = blocks_[l];
    const RMSNorm& next_norm = l + 1 < blocks_.size() ? blocks_[l + 1].attn_norm : final_norm_;
    MapProbe layer_probe;
    if (probe)
      layer_probe = [probe, l](const Tensor& q, const Tensor& k, double scale) {
        (*probe)(static_cast<int>(l), q, k, scale);
      };
    std::tie(x, normed) = b.mlp_norm.add_norm(
        x, b.attn->forward(normed, cache ? &cache->layer(l) : nullptr, probe ? &layer_probe : nullptr));
    std::tie(x, normed) = next_norm.add_norm(x, b.mlp(normed));
  }
  return ops::linear(normed, lm_head_);
}

std::pair<Tensor, Tensor> split_inputs_targets(const Tensor& tokens) {
  GTA_CHECK(tokens.ndim() == 2 && tokens.size(1) >= 2, "expected tokens [B, T+1] with T >= 1, got {}", tokens.str());
  const int64_t T = tokens.size(1) - 1;
  Tensor t = tokens.to(DType::i32);
  return {t.slice(1, 0, T).contiguous(), t.slice(1, 1, T + 1).contiguous().reshape({-1})};
}

Tensor Model::loss(const Tensor& tokens) const {
  auto [inputs, targets] = split_inputs_targets(tokens);
  Tensor logits = forward(inputs);
  return ops::cross_entropy(logits.reshape({-1, cfg_.vocab_size}), targets);
}

std::vector<std::vector<CacheEntry>> Model::cache_layout() const {
  std::vector<std::vector<CacheEntry>> layout;
  for (const Block& b : blocks_) layout.push_back(b.attn->cache_layout());
  return layout;
}

KVCache Model::make_cache(int64_t batch, int64_t max_len, int64_t initial_len) const {
  return KVCache(cache_layout(), batch, max_len, params_.dtype(), embed_.device(), initial_len);
}

}  // namespace gta::nn
