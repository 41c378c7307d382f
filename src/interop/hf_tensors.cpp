#include "interop/hf_tensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>

#include "core/error.h"

namespace gta::interop {

namespace {

std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

// A copy of the 2-D tensor `w` whose rows [start, start + width) are reordered between gta's
// rotate-half order (row i pairs with row width/2 + i) and the interleaved order (rows 2i and
// 2i + 1): to_interleaved moves row i to 2i and row width/2 + i to 2i + 1; the inverse otherwise.
Tensor permute_rope_rows(const Tensor& w, int64_t start, int64_t width, bool to_interleaved, const std::string& name,
                         const std::string& source) {
  GTA_CHECK(w.ndim() == 2 && w.size(0) >= start + width, "{}: tensor {} has shape {}, too few rows for its RoPE block",
            source, name, shape_str(w.shape()));
  Tensor src = w.contiguous();
  Tensor out = src.clone();
  const size_t row = static_cast<size_t>(w.size(1)) * dtype_size(w.dtype());
  const auto* in = static_cast<const char*>(src.raw_data());
  auto* o = static_cast<char*>(out.raw_data());
  const int64_t h = width / 2;
  for (int64_t i = 0; i < h; ++i) {
    const int64_t half[2] = {start + i, start + h + i}, inter[2] = {start + 2 * i, start + 2 * i + 1};
    for (int k = 0; k < 2; ++k) {
      const int64_t from = to_interleaved ? half[k] : inter[k], to = to_interleaved ? inter[k] : half[k];
      std::memcpy(o + static_cast<size_t>(to) * row, in + static_cast<size_t>(from) * row, row);
    }
  }
  return out;
}

// q_proj and kv_a_proj_with_mqa of every layer of an MLA model, their RoPE rows reordered.
void permute_mla_rope(const config::ModelConfig& m, std::map<std::string, Tensor>& t, bool to_interleaved,
                      const std::string& source) {
  const auto& a = m.attention;
  for (int l = 0; l < m.n_layers; ++l) {
    const std::string q = layer_prefix(l) + "self_attn.q_proj.weight";
    const std::string kva = layer_prefix(l) + "self_attn.kv_a_proj_with_mqa.weight";
    if (auto it = t.find(q); it != t.end()) {
      GTA_CHECK(it->second.ndim() == 2 && it->second.size(0) == int64_t{m.n_heads} * (a.d_nope + a.d_rope),
                "{}: tensor {} has shape {}, expected {} rows ({} heads of {} + {})", source, q,
                shape_str(it->second.shape()), m.n_heads * (a.d_nope + a.d_rope), m.n_heads, a.d_nope, a.d_rope);
      for (int j = 0; j < m.n_heads; ++j)
        it->second = permute_rope_rows(it->second, int64_t{j} * (a.d_nope + a.d_rope) + a.d_nope, a.d_rope,
                                       to_interleaved, q, source);
    }
    if (auto it = t.find(kva); it != t.end()) {
      GTA_CHECK(it->second.ndim() == 2 && it->second.size(0) == int64_t{a.d_c} + a.d_rope,
                "{}: tensor {} has shape {}, expected {} rows (kv_lora_rank {} + qk_rope_head_dim {})", source, kva,
                shape_str(it->second.shape()), a.d_c + a.d_rope, a.d_c, a.d_rope);
      it->second = permute_rope_rows(it->second, a.d_c, a.d_rope, to_interleaved, kva, source);
    }
  }
}

// Removes `name` when present, after checking that every element is zero (a bias gta lacks).
void take_zero(std::map<std::string, Tensor>& t, const std::string& name, const std::string& why,
               const std::string& source) {
  auto it = t.find(name);
  if (it == t.end()) return;
  double worst = 0;
  for (double v : it->second.to_doubles()) worst = std::max(worst, std::abs(v));
  GTA_CHECK(worst == 0, "{}: tensor {} is not zero (max |x| = {:g}): {}, so this model cannot be imported exactly",
            source, name, worst, why);
  t.erase(it);
}

}  // namespace

std::map<std::string, Tensor> to_hf_tensors(const config::ModelConfig& m, const std::map<std::string, Tensor>& params,
                                            DType dtype) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : params) out[name] = t.detach().to(Device::cpu()).contiguous();
  const HfArch arch = hf_arch_for(m);
  if (arch == HfArch::llama && m.has_qkv_bias())
    for (int l = 0; l < m.n_layers; ++l)
      out[layer_prefix(l) + "self_attn.o_proj.bias"] = Tensor::zeros({m.d_model}, DType::f32);
  if (arch == HfArch::deepseek_v3) permute_mla_rope(m, out, /*to_interleaved=*/true, "export");
  for (auto& [name, t] : out) t = t.to(dtype).contiguous();
  return out;
}

std::map<std::string, Tensor> from_hf_tensors(const HfImportedConfig& c, std::map<std::string, Tensor> t,
                                              const std::string& source) {
  const config::ModelConfig& m = c.model;
  for (auto it = t.begin(); it != t.end();)
    it = it->first.ends_with(".rotary_emb.inv_freq") ? t.erase(it) : std::next(it);
  for (int l = 0; l < m.n_layers; ++l) {
    if (c.o_proj_bias)
      take_zero(t, layer_prefix(l) + "self_attn.o_proj.bias", "gta's attention output projection has no bias", source);
    if (c.mlp_bias)
      for (const char* p : {"gate_proj", "up_proj", "down_proj"})
        take_zero(t, layer_prefix(l) + "mlp." + p + ".bias", "gta's MLP has no biases", source);
  }
  if (m.tie_embeddings) {
    auto head = t.find("lm_head.weight"), embed = t.find("model.embed_tokens.weight");
    if (head != t.end() && embed != t.end()) {
      GTA_CHECK(head->second.shape() == embed->second.shape() &&
                    head->second.to_doubles() == embed->second.to_doubles(),
                "{}: tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight", source);
      t.erase(head);
    }
  }
  if (c.arch == HfArch::deepseek_v3 && c.rope_interleave) permute_mla_rope(m, t, /*to_interleaved=*/false, source);
  return t;
}

}  // namespace gta::interop
