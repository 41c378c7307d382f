// Models for the inference and analysis tests: small configs of every attention type and
// weights at a scale where attention maps are far from uniform.
#pragma once
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "nn/model.h"
#include "test_util.h"

namespace gta_test {

// Small configs with odd sizes: vocab 37, d 48, 2 layers, 4 or 6 heads, tied and untied.
inline gta::config::ModelConfig small_config(const std::string& type) {
  gta::config::ModelConfig c = model_config(37, 48, 2, 52, 4, type);
  c.rope_theta = 500;  // low: positions matter within a few tokens
  auto& a = c.attention;
  if (type == "mha") {
    c.tie_embeddings = false;
  } else if (type == "gqa") {
    c.n_heads = 6, a.n_kv_heads = 2, a.qkv_bias = true;
  } else if (type == "mqa") {
    c.tie_embeddings = true;
  } else if (type == "gva") {
    c.n_heads = 6, a.n_q_heads = 3, a.n_k_heads = 1, c.tie_embeddings = false;
  } else if (type == "gha") {
    c.n_heads = 6, a.n_q_heads = 3, a.n_k_heads = 1, a.n_v_heads = 2, a.qkv_bias = true;
  } else if (type == "gta") {
    a.n_q_heads = 2, a.n_k_heads = 1, a.n_v_heads = 1, a.d_qk = 10, a.d_latent = 12, a.qkv_bias = true;
    c.tie_embeddings = false;
  } else if (type == "mla") {
    a.d_c = 20, a.d_rope = 6, a.d_nope = 8, a.d_v = 10;
  }
  c.validate();
  return c;
}

// Replaces the default N(0, 0.02) weights by O(1)-scale ones (weights N(0, 1/fan_in), norms
// 1 + N(0, 0.1^2), biases N(0, 0.1^2)) so logits are O(1) and attention maps far from uniform:
// a wrong position, a stale cache entry or a missing token then shows clearly in the logits.
inline void randomize(gta::nn::Model& m, uint64_t seed) {
  gta::Rng rng(seed);
  std::map<std::string, gta::Tensor> vals;
  for (const auto& [name, t] : m.params().all()) {
    std::vector<double> v(static_cast<size_t>(t.numel()));
    const bool norm = name.find("norm") != std::string::npos, bias = name.ends_with(".bias");
    const double std = norm || bias ? 0.1 : (t.ndim() == 2 ? 1.0 / std::sqrt(double(t.size(1))) : 0.1);
    for (double& x : v) x = (norm ? 1.0 : 0.0) + std * rng.normal();
    if (name == "model.embed_tokens.weight")
      for (double& x : v) x *= std::sqrt(double(t.size(1)));  // unit-scale embeddings
    vals[name] = gta::Tensor::from_doubles(v, t.shape(), gta::DType::f64);
  }
  m.params().load(vals, "randomize");
}

}  // namespace gta_test
