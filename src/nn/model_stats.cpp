#include "nn/model_stats.h"

namespace gta::nn {

ModelStats model_stats(const config::ModelConfig& c, int64_t T) {
  c.validate();
  ModelStats s;
  s.vocab = c.vocab_size;
  s.seq_len = T;
  const int64_t d = c.d_model, h = c.n_heads, hd = c.head_dim();
  const auto& a = c.attention;
  const int64_t bias = c.has_qkv_bias() ? 1 : 0;
  LayerStats& L = s.layer;
  const std::string& t = a.type;
  if (t == "gta") {
    const int64_t nq = a.n_q_heads, nk = a.n_k_heads, nv = a.n_v_heads, dqk = a.d_qk, dl = a.d_latent;
    const int64_t e = c.gta_expansion();
    L.gemm_params = d * (nq * dqk + nk * dqk + nv * dl) + d * d /*g*/ + e * dl * nq * dl /*Wb*/ + d * d /*o*/;
    L.attn_params = L.gemm_params + bias * (nq * dqk + nk * dqk + nv * dl) + d /*g bias*/;
    L.kv_elems_per_token = nk * dqk + nv * dl;
    L.qk_madds_per_pair = static_cast<double>(nq * dqk);
    L.v_madds_per_pair = static_cast<double>(nq * dl);
  } else if (t == "mla") {
    const int64_t dc = a.d_c, dr = a.d_rope, dn = a.d_nope, dv = a.d_v;
    L.gemm_params = d * h * (dn + dr) + d * (dc + dr) + dc * h * (dn + dv) + h * dv * d;
    L.attn_params = L.gemm_params + dc /*kv_a_layernorm*/;
    L.kv_elems_per_token = dc + dr;
    L.qk_madds_per_pair = static_cast<double>(h * (dn + dr));
    L.v_madds_per_pair = static_cast<double>(h * dv);
  } else {  // mha, gqa, mqa, gva, gha: n_q maps of hd; h output heads read values of width hd
    const int64_t nq = c.n_q(), nk = c.n_k(), nv = c.n_v();
    L.gemm_params = d * (nq + nk + nv) * hd + h * hd * d;
    L.attn_params = L.gemm_params + bias * (nq + nk + nv) * hd;
    L.kv_elems_per_token = (nk + nv) * hd;
    L.qk_madds_per_pair = static_cast<double>(nq * hd);
    L.v_madds_per_pair = static_cast<double>(h * hd);
  }
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
