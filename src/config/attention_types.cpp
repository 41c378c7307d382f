#include "config/attention_types.h"

#include "config/config.h"
#include "core/error.h"

namespace gta::config {

// ---- rules -----------------------------------------------------------------------------------

void AttentionRules::positive(std::initializer_list<std::pair<const char*, int>> keys) const {
  for (const auto& [key, value] : keys) {
    if (value > 0) continue;
    const std::string path = std::string("model.attention.") + key;
    fail("{}{} must be a positive integer for type {} (got {}{})", where_(path), path, m_.attention.type, value,
         value == 0 ? "; is it missing?" : "");
  }
}

void AttentionRules::divides(const char* small_path, int small, const char* big_path, int big) const {
  if (big % small != 0) fail("{}{} ({}) must divide {} ({})", where_(small_path), small_path, small, big_path, big);
}

void AttentionRules::even(const char* key, int value) const {
  const std::string path = std::string("model.attention.") + key;
  if (value % 2 != 0) fail("{}{} ({}) must be even for RoPE", where_(path), path, value);
}

void AttentionRules::even_head() const {
  const int hd = m_.d_model / m_.n_heads;
  if (hd % 2 != 0)
    fail("{}model.d_model / model.n_heads = {} (the head width) must be even for RoPE", where_("model.n_heads"), hd);
}

namespace {

// ---- shared maps: MHA, GQA, MQA, GVA, GHA ----------------------------------------------------
// n_q maps of width hd over n_k key heads; h output heads read value heads of width hd
// (docs/attention.md, "MHA, GQA, MQA" and "GVA, GHA"). Each type differs only in its head counts.

AttentionShape shared_map_shape(const ModelConfig& m, int n_q, int n_k, int n_v) {
  const int hd = m.head_dim();
  return {n_q, n_k, n_v, hd, hd, hd};
}

std::vector<CacheBuffer> shared_map_cache(const ModelConfig& m) {
  const AttentionShape s = attention_type(m.attention.type).shape(m);
  return {{"k", s.n_k, s.qk_dim}, {"v", s.n_v, s.v_dim}};
}

// q, k, v projections (+ biases when qkv_bias) and o_proj [d, h hd]; the maps read n_q hd per
// pair, the h output heads h hd.
AttentionCounts shared_map_counts(const ModelConfig& m) {
  const AttentionShape s = attention_type(m.attention.type).shape(m);
  const int64_t d = m.d_model, h = m.n_heads, hd = m.head_dim(), bias = m.has_qkv_bias() ? 1 : 0;
  const int64_t qkv = (int64_t{s.n_q} + s.n_k + s.n_v) * hd;
  return {d * qkv + h * hd * d, bias * qkv, s.n_q * hd, h * hd};
}

void validate_even_head(const ModelConfig&, const AttentionRules& r) { r.even_head(); }

void validate_gqa(const ModelConfig& m, const AttentionRules& r) {
  r.positive({{"n_kv_heads", m.attention.n_kv_heads}});
  r.divides("model.attention.n_kv_heads", m.attention.n_kv_heads, "model.n_heads", m.n_heads);
  r.even_head();
}

// GVA and GHA: n_q maps over n_k key heads; GHA also n_v value heads (with_v). The rules run in
// this order, so the first broken one is the one reported.
void validate_grouped_maps(const ModelConfig& m, const AttentionRules& r, bool with_v) {
  const auto& a = m.attention;
  r.positive({{"n_q_heads", a.n_q_heads}, {"n_k_heads", a.n_k_heads}});
  if (with_v) r.positive({{"n_v_heads", a.n_v_heads}});
  r.divides("model.attention.n_q_heads", a.n_q_heads, "model.n_heads", m.n_heads);
  r.divides("model.attention.n_k_heads", a.n_k_heads, "model.attention.n_q_heads", a.n_q_heads);
  if (with_v) r.divides("model.attention.n_v_heads", a.n_v_heads, "model.n_heads", m.n_heads);
  r.even_head();
}

void validate_gva(const ModelConfig& m, const AttentionRules& r) { validate_grouped_maps(m, r, false); }
void validate_gha(const ModelConfig& m, const AttentionRules& r) { validate_grouped_maps(m, r, true); }

// ---- GTA (docs/attention.md, "GTA") ----------------------------------------------------------

void validate_gta(const ModelConfig& m, const AttentionRules& r) {
  const auto& a = m.attention;
  r.positive({{"n_q_heads", a.n_q_heads},
              {"n_k_heads", a.n_k_heads},
              {"n_v_heads", a.n_v_heads},
              {"d_qk", a.d_qk},
              {"d_latent", a.d_latent}});
  r.divides("model.attention.n_k_heads", a.n_k_heads, "model.attention.n_q_heads", a.n_q_heads);
  r.divides("model.attention.n_v_heads", a.n_v_heads, "model.attention.n_q_heads", a.n_q_heads);
  r.even("d_qk", a.d_qk);
  const int64_t unit = int64_t{a.n_q_heads} * a.d_latent;
  if (m.d_model % unit != 0)
    fail("{}model.d_model ({}) must equal n_q_heads*e*d_latent for an integer e "
         "(model.attention.n_q_heads*d_latent = {}*{} = {} does not divide it)",
         r.where("model.attention.d_latent"), m.d_model, a.n_q_heads, a.d_latent, unit);
}

AttentionShape gta_shape(const ModelConfig& m) {
  const auto& a = m.attention;
  return {a.n_q_heads, a.n_k_heads, a.n_v_heads, a.d_qk, a.d_latent, a.d_qk};
}

std::vector<CacheBuffer> gta_cache(const ModelConfig& m) {
  const auto& a = m.attention;
  return {{"k", a.n_k_heads, a.d_qk}, {"latent", a.n_v_heads, a.d_latent}};
}

// q, k, c projections (+ biases when qkv_bias), g_proj [d, d] with its bias, v_b_proj
// [e d_l, n_q d_l], o_proj [d, d].
AttentionCounts gta_counts(const ModelConfig& m) {
  const auto& a = m.attention;
  const int64_t d = m.d_model, bias = m.has_qkv_bias() ? 1 : 0, e = m.gta_expansion();
  const int64_t qkv = int64_t{a.n_q_heads} * a.d_qk + int64_t{a.n_k_heads} * a.d_qk + int64_t{a.n_v_heads} * a.d_latent;
  return {d * qkv + d * d + e * a.d_latent * a.n_q_heads * a.d_latent + d * d, bias * qkv + d,
          int64_t{a.n_q_heads} * a.d_qk, int64_t{a.n_q_heads} * a.d_latent};
}

// ---- MLA (docs/attention.md, "MLA") ----------------------------------------------------------

void validate_mla(const ModelConfig& m, const AttentionRules& r) {
  const auto& a = m.attention;
  r.positive({{"d_c", a.d_c}, {"d_rope", a.d_rope}, {"d_nope", a.d_nope}, {"d_v", a.d_v}});
  r.even("d_rope", a.d_rope);
}

AttentionShape mla_shape(const ModelConfig& m) {
  const auto& a = m.attention;
  return {m.n_heads, m.n_heads, m.n_heads, a.d_nope + a.d_rope, a.d_v, a.d_rope};
}

std::vector<CacheBuffer> mla_cache(const ModelConfig& m) {
  return {{"latent", 1, m.attention.d_c}, {"k_pe", 1, m.attention.d_rope}};
}

// q_proj [h (d_nope + d_rope), d], kv_a_proj_with_mqa [d_c + d_rope, d], kv_a_layernorm [d_c],
// kv_b_proj [h (d_nope + d_v), d_c], o_proj [d, h d_v]; no biases.
AttentionCounts mla_counts(const ModelConfig& m) {
  const auto& a = m.attention;
  const int64_t d = m.d_model, h = m.n_heads, dc = a.d_c, dr = a.d_rope, dn = a.d_nope, dv = a.d_v;
  return {d * h * (dn + dr) + d * (dc + dr) + dc * h * (dn + dv) + h * dv * d, dc, h * (dn + dr), h * dv};
}

}  // namespace

// ---- the table -------------------------------------------------------------------------------

const std::vector<AttentionType>& attention_type_table() {
  using M = AttentionModule;
  static const std::vector<AttentionType> table = {
      {"mha", {"qkv_bias"}, M::shared_map, validate_even_head,
       [](const ModelConfig& m) { return shared_map_shape(m, m.n_heads, m.n_heads, m.n_heads); }, shared_map_cache,
       shared_map_counts},
      {"gqa", {"n_kv_heads", "qkv_bias"}, M::shared_map, validate_gqa,
       [](const ModelConfig& m) {
         return shared_map_shape(m, m.n_heads, m.attention.n_kv_heads, m.attention.n_kv_heads);
       },
       shared_map_cache, shared_map_counts},
      {"mqa", {"qkv_bias"}, M::shared_map, validate_even_head,
       [](const ModelConfig& m) { return shared_map_shape(m, m.n_heads, 1, 1); }, shared_map_cache,
       shared_map_counts},
      {"gva", {"n_q_heads", "n_k_heads", "qkv_bias"}, M::shared_map, validate_gva,
       [](const ModelConfig& m) {
         return shared_map_shape(m, m.attention.n_q_heads, m.attention.n_k_heads, m.n_heads);
       },
       shared_map_cache, shared_map_counts},
      {"gha", {"n_q_heads", "n_k_heads", "n_v_heads", "qkv_bias"}, M::shared_map, validate_gha,
       [](const ModelConfig& m) {
         return shared_map_shape(m, m.attention.n_q_heads, m.attention.n_k_heads, m.attention.n_v_heads);
       },
       shared_map_cache, shared_map_counts},
      {"gta", {"n_q_heads", "n_k_heads", "n_v_heads", "d_qk", "d_latent", "qkv_bias"}, M::gta, validate_gta,
       gta_shape, gta_cache, gta_counts},
      {"mla", {"d_c", "d_rope", "d_nope", "d_v"}, M::mla, validate_mla, mla_shape, mla_cache, mla_counts},
  };
  return table;
}

const AttentionType* find_attention_type(const std::string& name) {
  for (const auto& t : attention_type_table())
    if (t.name == name) return &t;
  return nullptr;
}

const AttentionType& attention_type(const std::string& name) {
  if (const AttentionType* t = find_attention_type(name)) return *t;
  std::string names;
  for (const auto& t : attention_type_table()) names += (names.empty() ? "" : ", ") + t.name;
  fail("model.attention.type: expected one of {}, got '{}'", names, name);
}

}  // namespace gta::config
