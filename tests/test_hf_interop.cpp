// Hugging Face export and import (src/interop/): every attention type survives export -> import
// with identical weights and loss, in f32 and bf16; config.json says what transformers needs;
// MLA's RoPE rows are stored in transformers' interleaved order; and bad input is refused with a
// message naming the file and the key or tensor.
#include <gtest/gtest.h>

#include <filesystem>

#include "autograd/tape.h"
#include "config/config.h"
#include "interop/hf_config.h"
#include "interop/hf_export.h"
#include "interop/hf_import.h"
#include "io/safetensors.h"
#include "nn/model.h"
#include "test_models.h"
#include "test_util.h"
#include "train/checkpoint.h"

namespace {

using namespace gta;
using gta_test::TempDir;

// small_config(type), with MLA at the one norm epsilon DeepSeek-V3 can express.
config::ModelConfig exportable_config(const std::string& type) {
  config::ModelConfig c = gta_test::small_config(type);
  if (type == "mla") c.norm_eps = 1e-6;
  return c;
}

// A randomised model of `cfg` saved as gta weights (the model file of a checkpoint) at `path`.
std::unique_ptr<nn::Model> saved_model(const config::ModelConfig& cfg, const std::string& path, uint64_t seed) {
  auto m = std::make_unique<nn::Model>(cfg, DType::f32, seed);
  gta_test::randomize(*m, seed);
  std::map<std::string, Tensor> t;
  for (const auto& [name, p] : m->params().all()) t[name] = p.detach();
  io::save_safetensors(path, t, {{"format", "gta"}, {"config", config::to_json(cfg).dump()}});
  return m;
}

double loss_of(const nn::Model& m, const Tensor& tokens) {
  autograd::NoGradGuard no_grad;
  return m.loss(tokens).item();
}

interop::HfExportResult export_to(const std::string& ckpt, const std::string& dir, DType dtype = DType::f32) {
  interop::HfExportOptions o;
  o.checkpoint = ckpt;
  o.out_dir = dir;
  o.dtype = dtype;
  return interop::export_hf(o);
}

interop::HfImportResult import_to(const std::string& dir, const std::string& out, bool overwrite = false) {
  interop::HfImportOptions o;
  o.hf_dir = dir;
  o.out_dir = out;
  o.overwrite = overwrite;
  return interop::import_hf(o);
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(gta_test::read_file(path)); }
void write_json(const std::string& path, const nlohmann::json& j) { gta_test::write_file(path, j.dump(2)); }

class HfRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(HfRoundTrip, ExportImportKeepsWeightsAndLoss) {
  TempDir dir;
  const config::ModelConfig cfg = exportable_config(GetParam());
  const auto original = saved_model(cfg, dir / "gta.safetensors", 7);
  const auto exported = export_to(dir / "gta.safetensors", dir / "hf");
  EXPECT_EQ(exported.arch, interop::hf_arch_for(cfg));
  const auto imported = import_to(dir / "hf", dir / "back");
  EXPECT_EQ(imported.model, cfg);  // same type and keys, not only the same function

  const auto back = train::load_model(dir / "back");
  EXPECT_EQ(back->config(), cfg);
  for (const auto& [name, p] : original->params().all())
    EXPECT_TRUE(gta_test::bits_equal(p, back->params().get(name))) << name;
  const Tensor tokens = gta_test::random_tokens(2, 9, cfg.vocab_size, 3);
  EXPECT_EQ(loss_of(*original, tokens), loss_of(*back, tokens));
}

TEST_P(HfRoundTrip, Bf16ExportHoldsTheRoundedWeights) {
  TempDir dir;
  const config::ModelConfig cfg = exportable_config(GetParam());
  const auto original = saved_model(cfg, dir / "gta.safetensors", 8);
  export_to(dir / "gta.safetensors", dir / "hf", DType::bf16);
  EXPECT_EQ(read_json(dir / "hf/config.json")["torch_dtype"], "bfloat16");
  for (const auto& [name, e] : io::read_safetensors_header(dir / "hf/model.safetensors").entries)
    EXPECT_EQ(e.dtype, DType::bf16) << name;
  import_to(dir / "hf", dir / "back");
  const auto back = train::load_model(dir / "back");
  for (const auto& [name, p] : original->params().all())
    EXPECT_TRUE(gta_test::bits_equal(p.to(DType::bf16).to(DType::f32), back->params().get(name))) << name;
  // Exported again in bf16, the imported model gives the same file: nothing is lost twice.
  export_to(dir / "back", dir / "hf2", DType::bf16);
  EXPECT_EQ(gta_test::read_file(dir / "hf/model.safetensors"), gta_test::read_file(dir / "hf2/model.safetensors"));
}

INSTANTIATE_TEST_SUITE_P(EveryType, HfRoundTrip, ::testing::ValuesIn(config::attention_types()),
                         [](const auto& info) { return info.param; });

TEST(HfExport, LlamaConfigKeys) {
  TempDir dir;
  config::ModelConfig cfg = gta_test::small_config("gqa");  // 6 heads over 2, q/k/v biases
  saved_model(cfg, dir / "gta.safetensors", 1);
  export_to(dir / "gta.safetensors", dir / "hf");
  const nlohmann::json j = read_json(dir / "hf/config.json");
  EXPECT_EQ(j["architectures"], nlohmann::json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(j["model_type"], "llama");
  EXPECT_EQ(j["vocab_size"], cfg.vocab_size);
  EXPECT_EQ(j["hidden_size"], cfg.d_model);
  EXPECT_EQ(j["intermediate_size"], cfg.d_ff);
  EXPECT_EQ(j["num_hidden_layers"], cfg.n_layers);
  EXPECT_EQ(j["num_attention_heads"], 6);
  EXPECT_EQ(j["num_key_value_heads"], 2);
  EXPECT_EQ(j["head_dim"], 8);
  EXPECT_EQ(j["attention_bias"], true);
  EXPECT_EQ(j["mlp_bias"], false);
  EXPECT_EQ(j["tie_word_embeddings"], cfg.tie_embeddings);
  EXPECT_EQ(j["rope_theta"], cfg.rope_theta);
  EXPECT_EQ(j["rms_norm_eps"], cfg.norm_eps);
  EXPECT_EQ(j["hidden_act"], "silu");
  EXPECT_EQ(j["torch_dtype"], "float32");
  EXPECT_EQ(j["max_position_embeddings"], 2048);  // no trainer.json: the default
  EXPECT_TRUE(j["rope_scaling"].is_null());
  // Llama's attention_bias gives o_proj a bias: written as zeros; and safetensors metadata "pt".
  const auto f = io::load_safetensors(dir / "hf/model.safetensors");
  EXPECT_EQ(f.metadata.at("format"), "pt");
  const Tensor ob = f.tensors.at("model.layers.1.self_attn.o_proj.bias");
  EXPECT_EQ(ob.shape(), Shape({cfg.d_model}));
  for (double v : ob.to_doubles()) EXPECT_EQ(v, 0.0);
  EXPECT_EQ(f.tensors.count("lm_head.weight"), 0u);  // tied
}

TEST(HfExport, DeepseekConfigKeysAndInterleavedRope) {
  TempDir dir;
  const config::ModelConfig cfg = exportable_config("mla");  // h 4, d_c 20, d_rope 6, d_nope 8, d_v 10
  const auto m = saved_model(cfg, dir / "gta.safetensors", 2);
  export_to(dir / "gta.safetensors", dir / "hf");
  const nlohmann::json j = read_json(dir / "hf/config.json");
  EXPECT_EQ(j["architectures"], nlohmann::json::array({"DeepseekV3ForCausalLM"}));
  EXPECT_EQ(j["model_type"], "deepseek_v3");
  EXPECT_TRUE(j["q_lora_rank"].is_null());
  EXPECT_EQ(j["kv_lora_rank"], 20);
  EXPECT_EQ(j["qk_rope_head_dim"], 6);
  EXPECT_EQ(j["qk_nope_head_dim"], 8);
  EXPECT_EQ(j["v_head_dim"], 10);
  EXPECT_EQ(j["num_key_value_heads"], 4);
  EXPECT_EQ(j["first_k_dense_replace"], cfg.n_layers);
  EXPECT_EQ(j["rope_interleave"], true);
  EXPECT_EQ(j["rms_norm_eps"], 1e-6);
  // transformers reads RoPE row 2i as gta's row i and row 2i + 1 as gta's row d_rope/2 + i.
  const auto f = io::load_safetensors(dir / "hf/model.safetensors");
  const auto rows = [](const Tensor& w, int64_t r) { return w.slice(0, r, r + 1).to_doubles(); };
  const Tensor gq = m->params().get("model.layers.0.self_attn.q_proj.weight");
  const Tensor hq = f.tensors.at("model.layers.0.self_attn.q_proj.weight");
  const Tensor gk = m->params().get("model.layers.0.self_attn.kv_a_proj_with_mqa.weight");
  const Tensor hk = f.tensors.at("model.layers.0.self_attn.kv_a_proj_with_mqa.weight");
  for (int64_t head = 0; head < 4; ++head) {
    const int64_t s = head * 14 + 8;  // the head's RoPE rows follow its d_nope rows
    for (int64_t i = 0; i < 3; ++i) {
      EXPECT_EQ(rows(hq, s + 2 * i), rows(gq, s + i));
      EXPECT_EQ(rows(hq, s + 2 * i + 1), rows(gq, s + 3 + i));
    }
    for (int64_t r = head * 14; r < head * 14 + 8; ++r) EXPECT_EQ(rows(hq, r), rows(gq, r));  // no-RoPE rows stay
  }
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rows(hk, 20 + 2 * i), rows(gk, 20 + i));
    EXPECT_EQ(rows(hk, 20 + 2 * i + 1), rows(gk, 23 + i));
  }
  for (int64_t r = 0; r < 20; ++r) EXPECT_EQ(rows(hk, r), rows(gk, r));
}

TEST(HfExport, GtaFamilyKeepsItsOwnConfig) {
  TempDir dir;
  const config::ModelConfig cfg = exportable_config("gta");
  saved_model(cfg, dir / "gta.safetensors", 3);
  export_to(dir / "gta.safetensors", dir / "hf");
  const nlohmann::json j = read_json(dir / "hf/config.json");
  EXPECT_EQ(j["architectures"], nlohmann::json::array({"GTAForCausalLM"}));
  EXPECT_EQ(j["model_type"], "gta");
  EXPECT_EQ(config::model_config_from_json(j["gta_config"]), cfg);
}

TEST(HfExport, RefusesWhatTransformersWouldComputeDifferently) {
  TempDir dir;
  config::ModelConfig cfg = gta_test::small_config("mla");  // norm_eps 1e-5
  saved_model(cfg, dir / "gta.safetensors", 4);
  EXPECT_ERROR_HAS(export_to(dir / "gta.safetensors", dir / "hf"), "gta.safetensors", "kv_a_layernorm",
                   "epsilon 1e-6", "norm_eps");
  EXPECT_FALSE(std::filesystem::exists(dir / "hf"));  // nothing left behind
}

TEST(HfExport, RefusesBadInputAndNonEmptyOutput) {
  TempDir dir;
  saved_model(exportable_config("mha"), dir / "gta.safetensors", 5);
  EXPECT_ERROR_HAS(export_to(dir / "missing", dir / "hf"), "missing", "no such file or directory");
  dir.write("hf/keep.txt", "mine");
  EXPECT_ERROR_HAS(export_to(dir / "gta.safetensors", dir / "hf"), "hf", "not empty", "--overwrite");
  EXPECT_EQ(gta_test::read_file(dir / "hf/keep.txt"), "mine");
  interop::HfExportOptions o;
  o.checkpoint = dir / "gta.safetensors";
  o.out_dir = dir / "hf";
  o.overwrite = true;
  interop::export_hf(o);
  EXPECT_FALSE(std::filesystem::exists(dir / "hf/keep.txt"));
  EXPECT_TRUE(std::filesystem::exists(dir / "hf/config.json"));
}

// An exported Llama directory to break in the import tests.
class HfImportErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_model(gta_test::small_config("gqa"), dir / "gta.safetensors", 6);
    export_to(dir / "gta.safetensors", dir / "hf");
    config = read_json(dir / "hf/config.json");
  }
  void set(const std::string& key, const nlohmann::json& v) {
    nlohmann::json j = config;
    j[key] = v;
    write_json(dir / "hf/config.json", j);
  }
  TempDir dir;
  nlohmann::json config;
};

TEST_F(HfImportErrors, MissingFiles) {
  EXPECT_ERROR_HAS(import_to(dir / "nowhere", dir / "out"), "nowhere", "no such directory");
  std::filesystem::create_directories(dir / "empty");
  EXPECT_ERROR_HAS(import_to(dir / "empty", dir / "out"), "empty", "no config.json");
  std::filesystem::rename(dir / "hf/model.safetensors", dir / "hf/pytorch_model.bin");
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "pytorch_model.bin", "safetensors only");
  std::filesystem::remove(dir / "hf/pytorch_model.bin");
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "no model.safetensors");
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
}

TEST_F(HfImportErrors, UnknownArchitectureAndSettings) {
  set("architectures", {"MistralForCausalLM"});
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "config.json", "MistralForCausalLM", "LlamaForCausalLM");
  set("hidden_act", "gelu");
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "config.json", "hidden_act", "gelu");
  set("rope_scaling", {{"rope_type", "linear"}, {"factor", 2.0}});
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "config.json", "rope_scaling");
  set("head_dim", 16);
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "config.json", "head_dim", "16");
  set("num_key_value_heads", 4);
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "num_key_value_heads", "must divide");
  set("hidden_size", "wide");
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "config.json", "hidden_size", "must be an integer");
}

TEST_F(HfImportErrors, ShapeMismatchNamesTheTensor) {
  set("intermediate_size", 50);  // the MLP weights are 52 wide
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "model.safetensors", "model.layers.0.mlp.gate_proj.weight",
                   "[52, 48]", "[50, 48]");
}

TEST_F(HfImportErrors, NonZeroBiasGtaLacks) {
  auto f = io::load_safetensors(dir / "hf/model.safetensors");
  f.tensors["model.layers.0.self_attn.o_proj.bias"] = Tensor::full({48}, 0.5);
  io::save_safetensors(dir / "hf/model.safetensors", f.tensors, f.metadata);
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "model.layers.0.self_attn.o_proj.bias", "not zero",
                   "no bias");
}

TEST_F(HfImportErrors, MissingAndExtraTensors) {
  const auto f = io::load_safetensors(dir / "hf/model.safetensors");
  auto missing = f.tensors;
  missing.erase("model.layers.1.mlp.up_proj.weight");
  io::save_safetensors(dir / "hf/model.safetensors", missing, f.metadata);
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "missing tensor model.layers.1.mlp.up_proj.weight");
  auto extra = f.tensors;
  extra["model.layers.0.self_attn.q_norm.weight"] = Tensor::ones({8});
  io::save_safetensors(dir / "hf/model.safetensors", extra, f.metadata);
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "unexpected tensor model.layers.0.self_attn.q_norm.weight");
}

TEST(HfImport, DeepseekRefusals) {
  TempDir dir;
  saved_model(exportable_config("mla"), dir / "gta.safetensors", 9);
  export_to(dir / "gta.safetensors", dir / "hf");
  const nlohmann::json good = read_json(dir / "hf/config.json");
  const auto with = [&](const std::string& key, const nlohmann::json& v) {
    nlohmann::json j = good;
    j[key] = v;
    write_json(dir / "hf/config.json", j);
  };
  with("q_lora_rank", 16);
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "q_lora_rank", "must be null");
  nlohmann::json absent = good;  // DeepseekV3Config's default is 1536, not null
  absent.erase("q_lora_rank");
  write_json(dir / "hf/config.json", absent);
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "q_lora_rank", "must be null");
  with("first_k_dense_replace", 1);
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "first_k_dense_replace", "mixture-of-experts");
  with("rms_norm_eps", 1e-5);
  EXPECT_ERROR_HAS(import_to(dir / "hf", dir / "out"), "rms_norm_eps", "kv_a_layernorm");
  // Not interleaved: the rows are taken as they are (a different function than the export's).
  with("rope_interleave", false);
  import_to(dir / "hf", dir / "out");
  const auto f = io::load_safetensors(dir / "hf/model.safetensors");
  const auto back = train::load_model(dir / "out");
  EXPECT_TRUE(gta_test::bits_equal(f.tensors.at("model.layers.0.self_attn.q_proj.weight"),
                                   back->params().get("model.layers.0.self_attn.q_proj.weight")));
}

TEST(HfImport, ShardedCheckpoint) {
  TempDir dir;
  const config::ModelConfig cfg = exportable_config("mqa");
  const auto original = saved_model(cfg, dir / "gta.safetensors", 10);
  export_to(dir / "gta.safetensors", dir / "hf");
  // Split model.safetensors into two shards and an index, as save_pretrained does for big models.
  auto f = io::load_safetensors(dir / "hf/model.safetensors");
  std::map<std::string, Tensor> a, b;
  nlohmann::json map = nlohmann::json::object();
  for (const auto& [name, t] : f.tensors) {
    const bool first = name.find("layers.1.") == std::string::npos;
    (first ? a : b)[name] = t;
    map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  std::filesystem::remove(dir / "hf/model.safetensors");
  io::save_safetensors(dir / "hf/model-00001-of-00002.safetensors", a, {{"format", "pt"}});
  io::save_safetensors(dir / "hf/model-00002-of-00002.safetensors", b, {{"format", "pt"}});
  write_json(dir / "hf/model.safetensors.index.json", {{"metadata", {{"total_size", 0}}}, {"weight_map", map}});
  const auto r = import_to(dir / "hf", dir / "out");
  EXPECT_EQ(r.weight_files.size(), 2u);
  const auto back = train::load_model(dir / "out");
  const Tensor tokens = gta_test::random_tokens(1, 7, cfg.vocab_size, 4);
  EXPECT_EQ(loss_of(*original, tokens), loss_of(*back, tokens));
}

}  // namespace
