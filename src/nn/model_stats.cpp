#include "nn/model_stats.h"

#include "config/attention_types.h"

namespace gta::nn {

ModelStats model_stats(const config::ModelConfig& c, int64_t T) {
  c.validate();
  ModelStats s;
  s.vocab = c.vocab_size;
  s.seq_len = T;
  const int64_t d = c.d_model;
  // The attention's own counts come from the table of attention types.
  const config::AttentionCounts attn = config::attention_type(c.attention.type).counts(c);
  LayerStats& L = s.layer;
  L.gemm_params = attn.gemm_params;
  L.attn_params = attn.gemm_params + attn.vector_params;
  L.kv_elems_per_token = c.kv_cache_elems_per_token_per_layer();
  L.qk_madds_per_pair = static_cast<double>(attn.qk_madds_per_pair);
  L.v_madds_per_pair = static_cast<double>(attn.v_madds_per_pair);
  L.mlp_params = 3 * d * c.d_ff;
  L.gemm_params += L.mlp_params;
  L.norm_params = 2 * d;
  L.attn_madds_per_token = (L.qk_madds_per_pair + L.v_madds_per_pair) * static_cast<double>(T) / 2.0;

  s.embedding_params = c.vocab_size * d;
  s.head_params = c.tie_embeddings ? 0 : c.vocab_size * d;
  const int64_t per_layer = L.attn_params + L.mlp_params + L.norm_params;
  s.total_params = s.embedding_params + s.head_params + c.n_layers * per_layer + d /*final norm*/;
  s.non_embedding_params = s.total_params - s.embedding_params - s.head_params;
  s.kv_elems_per_token = c.n_layers * L.kv_elems_per_token;
  s.kv_bytes_per_token_bf16 = 2 * s.kv_elems_per_token;
  s.attn_madds_per_token = c.n_layers * L.attn_madds_per_token;
  const double gemm = static_cast<double>(c.n_layers * L.gemm_params + c.vocab_size * d /*output head*/);
  s.train_flops_per_token = 6.0 * gemm + 6.0 * s.attn_madds_per_token;
  return s;
}

nlohmann::json ModelStats::to_json() const {
  return {{"vocab_size", vocab},
          {"seq_len", seq_len},
          {"params",
           {{"total", total_params},
            {"non_embedding", non_embedding_params},
            {"embedding", embedding_params},
            {"lm_head", head_params},
            {"attention_per_layer", layer.attn_params},
            {"mlp_per_layer", layer.mlp_params}}},
          {"kv_cache",
           {{"elems_per_token_per_layer", layer.kv_elems_per_token},
            {"elems_per_token", kv_elems_per_token},
            {"bytes_per_token_bf16", kv_bytes_per_token_bf16}}},
          {"attention_madds_per_token", {{"per_layer", layer.attn_madds_per_token}, {"total", attn_madds_per_token}}},
          {"attention_madds_per_token_pair_per_layer", layer.qk_madds_per_pair + layer.v_madds_per_pair},
          {"train_flops_per_token", train_flops_per_token}};
}

}  // namespace gta::nn
