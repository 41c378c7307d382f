// Hugging Face `config.json` <-> gta's model config (`gta export --hf`, `gta import`).
//
// Which transformers class a gta model maps to (docs/formats.md, "Hugging Face export"):
//   mha, gqa, mqa  LlamaForCausalLM: the same block (pre-norm RMSNorm, SwiGLU MLP, rotate-half
//                  RoPE over whole heads, optional q/k/v biases), the same tensor names.
//   mla            DeepseekV3ForCausalLM with every layer dense (first_k_dense_replace =
//                  num_hidden_layers), no query compression (q_lora_rank null) and the RoPE
//                  features stored interleaved (rope_interleave true; interop/hf_tensors.h
//                  permutes them). transformers fixes the kv_a_layernorm epsilon at 1e-6 while
//                  gta uses model.norm_eps for every norm, so only norm_eps = 1e-6 maps exactly.
//   gva, gha, gta  no transformers class: config.json says "architectures": ["GTAForCausalLM"],
//                  "model_type": "gta" and carries gta's model config under "gta_config"; the
//                  tensors keep gta's names.
// Anything gta's math cannot reproduce exactly (another activation, RoPE scaling, a partial
// rotary, query compression, mixture-of-experts layers, biases gta has no place for, another
// kv_a_layernorm epsilon) is refused with a gta::Error naming the file and the key.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"
#include "core/dtype.h"

namespace gta::interop {

enum class HfArch { llama, deepseek_v3, gta };

// "LlamaForCausalLM", "DeepseekV3ForCausalLM", "GTAForCausalLM".
const char* hf_arch_name(HfArch a);
// The architecture a gta model exports as (by its attention type).
HfArch hf_arch_for(const config::ModelConfig& m);

// What config.json says besides the model itself.
struct HfExportInfo {
  DType dtype = DType::f32;             // the tensors' dtype: torch_dtype
  int64_t max_position_embeddings = 0;  // the context the model was trained for (RoPE needs no limit)
  int bos_token_id = -1, eos_token_id = -1;  // from the tokenizer; -1: unknown (null)
};

// config.json for `m`. Throws gta::Error (naming `source`) when the model has no exact
// transformers equivalent of the architecture hf_arch_for picks (MLA with norm_eps != 1e-6).
nlohmann::json hf_config_json(const config::ModelConfig& m, const HfExportInfo& info, const std::string& source);

struct HfImportedConfig {
  HfArch arch = HfArch::llama;
  config::ModelConfig model;  // validated
  // Llama's attention_bias adds an o_proj bias and mlp_bias three MLP biases that gta has no
  // place for: the import takes them only when they are all zero (interop/hf_tensors.h).
  bool o_proj_bias = false, mlp_bias = false;
  // DeepSeek-V3: the q_pe and k_pe rows are stored interleaved (transformers de-interleaves them
  // before its rotate-half RoPE); gta's rows are in rotate-half order.
  bool rope_interleave = false;
};

// Reads a config.json (its parsed JSON `j`, read from `source`). Throws gta::Error naming
// `source` and the key for an architecture gta does not know, a missing or mistyped key, or a
// setting gta cannot reproduce exactly.
HfImportedConfig model_config_from_hf(const nlohmann::json& j, const std::string& source);

}  // namespace gta::interop
