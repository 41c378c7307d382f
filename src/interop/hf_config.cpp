#include "interop/hf_config.h"

#include <cmath>

#include "config/attention_types.h"
#include "core/error.h"

namespace gta::interop {

namespace {

// transformers' DeepseekV3RMSNorm for kv_a_layernorm takes no epsilon from the config.
constexpr double kDeepseekKvNormEps = 1e-6;

bool has(const nlohmann::json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

int64_t get_int(const nlohmann::json& j, const char* key, const std::string& source) {
  GTA_CHECK(has(j, key), "{}: missing key \"{}\" (an integer)", source, key);
  GTA_CHECK(j[key].is_number_integer(), "{}: \"{}\" must be an integer, got {}", source, key, j[key].dump());
  return j[key].get<int64_t>();
}

int64_t get_int_or(const nlohmann::json& j, const char* key, int64_t dflt, const std::string& source) {
  return has(j, key) ? get_int(j, key, source) : dflt;
}

double get_num_or(const nlohmann::json& j, const char* key, double dflt, const std::string& source) {
  if (!has(j, key)) return dflt;
  GTA_CHECK(j[key].is_number(), "{}: \"{}\" must be a number, got {}", source, key, j[key].dump());
  return j[key].get<double>();
}

bool get_bool_or(const nlohmann::json& j, const char* key, bool dflt, const std::string& source) {
  if (!has(j, key)) return dflt;
  GTA_CHECK(j[key].is_boolean(), "{}: \"{}\" must be true or false, got {}", source, key, j[key].dump());
  return j[key].get<bool>();
}

int to_int(int64_t v, const char* key, const std::string& source) {
  GTA_CHECK(v > 0 && v <= (int64_t{1} << 30), "{}: \"{}\" must be a positive integer, got {}", source, key, v);
  return static_cast<int>(v);
}

HfArch arch_from_json(const nlohmann::json& j, const std::string& source) {
  std::string name;
  if (has(j, "architectures")) {
    const auto& a = j["architectures"];
    GTA_CHECK(a.is_array() && a.size() == 1 && a[0].is_string(),
              "{}: \"architectures\" must be a list of one class name, got {}", source, a.dump());
    name = a[0].get<std::string>();
  } else {
    GTA_CHECK(has(j, "model_type") && j["model_type"].is_string(),
              "{}: neither \"architectures\" nor \"model_type\" says what model this is", source);
    const std::string t = j["model_type"].get<std::string>();
    name = t == "llama" ? "LlamaForCausalLM" : t == "deepseek_v3" ? "DeepseekV3ForCausalLM" : t == "gta" ? "GTAForCausalLM" : t;
  }
  for (HfArch a : {HfArch::llama, HfArch::deepseek_v3, HfArch::gta})
    if (name == hf_arch_name(a)) return a;
  fail("{}: architecture '{}' cannot be imported: gta reads LlamaForCausalLM (MHA, GQA, MQA), "
       "DeepseekV3ForCausalLM (MLA, dense layers, no query compression) and GTAForCausalLM (written by gta export)",
       source, name);
}

// The keys Llama and DeepSeek-V3 share: sizes, norm, RoPE, activation, embeddings. Refuses what
// gta's block does not compute.
config::ModelConfig common_from_hf(const nlohmann::json& j, const std::string& source) {
  config::ModelConfig m;
  m.vocab_size = to_int(get_int(j, "vocab_size", source), "vocab_size", source);
  m.d_model = to_int(get_int(j, "hidden_size", source), "hidden_size", source);
  m.d_ff = to_int(get_int(j, "intermediate_size", source), "intermediate_size", source);
  m.n_layers = to_int(get_int(j, "num_hidden_layers", source), "num_hidden_layers", source);
  m.n_heads = to_int(get_int(j, "num_attention_heads", source), "num_attention_heads", source);
  m.norm_eps = get_num_or(j, "rms_norm_eps", 1e-6, source);
  m.tie_embeddings = get_bool_or(j, "tie_word_embeddings", false, source);
  const std::string act = has(j, "hidden_act") && j["hidden_act"].is_string() ? j["hidden_act"].get<std::string>() : "silu";
  GTA_CHECK(act == "silu", "{}: \"hidden_act\" is '{}'; gta's MLP is SwiGLU (silu) only", source, act);
  GTA_CHECK(get_num_or(j, "partial_rotary_factor", 1.0, source) == 1.0,
            "{}: \"partial_rotary_factor\" is not 1; gta rotates whole heads", source);
  GTA_CHECK(!has(j, "rope_scaling"), "{}: \"rope_scaling\" is {}; gta implements plain RoPE only (null)", source,
            has(j, "rope_scaling") ? j["rope_scaling"].dump() : "");
  // transformers 5 moved rope_theta into "rope_parameters" (rope_type "default" is plain RoPE).
  double theta = get_num_or(j, "rope_theta", 10000.0, source);
  if (has(j, "rope_parameters")) {
    const auto& rp = j["rope_parameters"];
    GTA_CHECK(rp.is_object(), "{}: \"rope_parameters\" must be an object, got {}", source, rp.dump());
    const std::string type = rp.contains("rope_type") && rp["rope_type"].is_string() ? rp["rope_type"].get<std::string>() : "default";
    GTA_CHECK(type == "default", "{}: \"rope_parameters\".\"rope_type\" is '{}'; gta implements plain RoPE only (default)",
              source, type);
    theta = get_num_or(rp, "rope_theta", theta, source + " \"rope_parameters\"");
  }
  m.rope_theta = theta;
  return m;
}

HfImportedConfig llama_from_hf(const nlohmann::json& j, const std::string& source) {
  HfImportedConfig r;
  r.arch = HfArch::llama;
  config::ModelConfig& m = r.model = common_from_hf(j, source);
  const int64_t kv = get_int_or(j, "num_key_value_heads", m.n_heads, source);
  GTA_CHECK(kv > 0 && m.n_heads % kv == 0, "{}: \"num_key_value_heads\" ({}) must divide \"num_attention_heads\" ({})",
            source, kv, m.n_heads);
  GTA_CHECK(m.d_model % m.n_heads == 0, "{}: \"num_attention_heads\" ({}) must divide \"hidden_size\" ({})", source,
            m.n_heads, m.d_model);
  const int64_t hd = get_int_or(j, "head_dim", m.d_model / m.n_heads, source);
  GTA_CHECK(hd == m.d_model / m.n_heads,
            "{}: \"head_dim\" is {} but gta's heads are hidden_size / num_attention_heads = {} wide", source, hd,
            m.d_model / m.n_heads);
  const bool bias = get_bool_or(j, "attention_bias", false, source);
  m.attention = {};
  if (kv == m.n_heads) {
    m.attention.type = "mha";
  } else if (kv == 1) {
    m.attention.type = "mqa";
  } else {
    m.attention.type = "gqa";
    m.attention.n_kv_heads = static_cast<int>(kv);
  }
  m.attention.qkv_bias = bias;
  r.o_proj_bias = bias;
  r.mlp_bias = get_bool_or(j, "mlp_bias", false, source);
  return r;
}

HfImportedConfig deepseek_from_hf(const nlohmann::json& j, const std::string& source) {
  HfImportedConfig r;
  r.arch = HfArch::deepseek_v3;
  config::ModelConfig& m = r.model = common_from_hf(j, source);
  // DeepseekV3Config defaults q_lora_rank to 1536 when the key is absent: it must be null.
  GTA_CHECK(j.contains("q_lora_rank") && j["q_lora_rank"].is_null(),
            "{}: \"q_lora_rank\" must be null: gta's MLA projects queries directly (q_proj), without q_a_proj/q_b_proj",
            source);
  const int64_t dense = get_int_or(j, "first_k_dense_replace", 3, source);
  GTA_CHECK(dense >= m.n_layers,
            "{}: \"first_k_dense_replace\" is {} but there are {} layers: layers from {} on are mixture-of-experts, "
            "which gta does not implement",
            source, dense, m.n_layers, dense);
  GTA_CHECK(!get_bool_or(j, "attention_bias", false, source),
            "{}: \"attention_bias\" is true; gta's MLA has no biases", source);
  const int64_t kv = get_int_or(j, "num_key_value_heads", m.n_heads, source);
  GTA_CHECK(kv == m.n_heads, "{}: \"num_key_value_heads\" ({}) must equal \"num_attention_heads\" ({}) for MLA", source,
            kv, m.n_heads);
  GTA_CHECK(m.norm_eps == kDeepseekKvNormEps,
            "{}: \"rms_norm_eps\" is {}, but transformers computes kv_a_layernorm with epsilon 1e-6 whatever it says, "
            "and gta uses one epsilon for every norm: only 1e-6 maps exactly",
            source, m.norm_eps);
  m.attention = {};
  m.attention.type = "mla";
  m.attention.d_c = to_int(get_int(j, "kv_lora_rank", source), "kv_lora_rank", source);
  m.attention.d_rope = to_int(get_int(j, "qk_rope_head_dim", source), "qk_rope_head_dim", source);
  m.attention.d_nope = to_int(get_int(j, "qk_nope_head_dim", source), "qk_nope_head_dim", source);
  m.attention.d_v = to_int(get_int(j, "v_head_dim", source), "v_head_dim", source);
  r.rope_interleave = get_bool_or(j, "rope_interleave", true, source);
  return r;
}

}  // namespace

const char* hf_arch_name(HfArch a) {
  switch (a) {
    case HfArch::llama: return "LlamaForCausalLM";
    case HfArch::deepseek_v3: return "DeepseekV3ForCausalLM";
    case HfArch::gta: return "GTAForCausalLM";
  }
  return "?";
}

HfArch hf_arch_for(const config::ModelConfig& m) {
  const std::string& t = m.attention.type;
  if (t == "mha" || t == "gqa" || t == "mqa") return HfArch::llama;
  if (t == "mla") return HfArch::deepseek_v3;
  return HfArch::gta;
}

nlohmann::json hf_config_json(const config::ModelConfig& m, const HfExportInfo& info, const std::string& source) {
  const HfArch arch = hf_arch_for(m);
  nlohmann::json j;
  j["architectures"] = {hf_arch_name(arch)};
  j["vocab_size"] = m.vocab_size;
  j["hidden_size"] = m.d_model;
  j["intermediate_size"] = m.d_ff;
  j["num_hidden_layers"] = m.n_layers;
  j["num_attention_heads"] = m.n_heads;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = m.norm_eps;
  j["rope_theta"] = m.rope_theta;
  j["rope_scaling"] = nullptr;
  j["tie_word_embeddings"] = m.tie_embeddings;
  j["max_position_embeddings"] = info.max_position_embeddings;
  j["torch_dtype"] = info.dtype == DType::bf16 ? "bfloat16" : "float32";
  j["bos_token_id"] = info.bos_token_id >= 0 ? nlohmann::json(info.bos_token_id) : nlohmann::json();
  j["eos_token_id"] = info.eos_token_id >= 0 ? nlohmann::json(info.eos_token_id) : nlohmann::json();
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  j["attention_dropout"] = 0.0;
  switch (arch) {
    case HfArch::llama:
      j["model_type"] = "llama";
      j["num_key_value_heads"] = m.n_kv();
      j["head_dim"] = m.head_dim();
      // Llama's attention_bias also gives o_proj a bias: exported as zeros (interop/hf_tensors.h).
      j["attention_bias"] = m.has_qkv_bias();
      j["mlp_bias"] = false;
      j["pretraining_tp"] = 1;
      break;
    case HfArch::deepseek_v3:
      GTA_CHECK(m.norm_eps == kDeepseekKvNormEps,
                "{}: an MLA model exports as DeepseekV3ForCausalLM, whose kv_a_layernorm uses epsilon 1e-6 whatever "
                "the config says, but this model uses model.norm_eps = {} for it; transformers would compute another "
                "function, so it is not exported (train MLA models for export with model.norm_eps: 1e-6)",
                source, m.norm_eps);
      j["model_type"] = "deepseek_v3";
      j["num_key_value_heads"] = m.n_heads;
      j["q_lora_rank"] = nullptr;
      j["kv_lora_rank"] = m.attention.d_c;
      j["qk_rope_head_dim"] = m.attention.d_rope;
      j["qk_nope_head_dim"] = m.attention.d_nope;
      j["v_head_dim"] = m.attention.d_v;
      j["rope_interleave"] = true;  // the q_pe and k_pe rows are stored interleaved
      j["first_k_dense_replace"] = m.n_layers;  // every layer a dense MLP of intermediate_size
      j["moe_intermediate_size"] = m.d_ff;
      j["attention_bias"] = false;
      break;
    case HfArch::gta:
      j["model_type"] = "gta";
      j["gta_config"] = config::to_json(m);
      break;
  }
  return j;
}

HfImportedConfig model_config_from_hf(const nlohmann::json& j, const std::string& source) {
  GTA_CHECK(j.is_object(), "{}: expected a JSON object, got {}", source, j.type_name());
  const HfArch arch = arch_from_json(j, source);
  HfImportedConfig r;
  try {
    if (arch == HfArch::gta) {
      GTA_CHECK(has(j, "gta_config"), "{}: a GTAForCausalLM config needs \"gta_config\" (the gta model config)", source);
      r.arch = arch;
      r.model = config::model_config_from_json(j["gta_config"], source + " \"gta_config\"");
      return r;
    }
    r = arch == HfArch::llama ? llama_from_hf(j, source) : deepseek_from_hf(j, source);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}", source, e.what());
  }
  try {
    r.model.validate();
  } catch (const Error& e) {
    fail("{}: the model it describes breaks a rule of gta's: {}", source, e.what());
  }
  return r;
}

}  // namespace gta::interop
