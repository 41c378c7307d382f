#include "interop/hf_export.h"

#include <filesystem>

#include "core/error.h"
#include "data/tokenizer.h"
#include "infer/tokenizer_lookup.h"
#include "interop/hf_tensors.h"
#include "interop/output_dir.h"
#include "core/durable_file.h"
#include "io/file_bytes.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"

namespace gta::interop {

namespace fs = std::filesystem;

namespace {

// train.seq_len of the run whose checkpoint holds `weights` (its trainer.json), or 0.
int64_t trained_seq_len(const std::string& weights) {
  const fs::path tpath = fs::path(weights).parent_path() / "trainer.json";
  std::error_code ec;
  if (!fs::is_regular_file(tpath, ec)) return 0;
  try {
    const nlohmann::json j = nlohmann::json::parse(io::read_file_bytes(tpath.string()));
    return j.at("config").at("train").at("seq_len").get<int64_t>();
  } catch (const std::exception&) {
    return 0;  // not a gta trainer.json: no recorded context
  }
}

}  // namespace

HfExportResult export_hf(const HfExportOptions& o) {
  GTA_CHECK(o.dtype == DType::f32 || o.dtype == DType::bf16, "--dtype must be f32 or bf16, got {}",
            dtype_name(o.dtype));
  GTA_CHECK(o.max_position_embeddings >= 0, "--max-position-embeddings must be >= 0, got {}",
            o.max_position_embeddings);
  HfExportResult r;
  r.weights = train::resolve_model_weights(o.checkpoint).source;
  OutputDir out(o.out_dir, o.overwrite);
  // Loading into a model checks every parameter's name and shape against the config.
  const std::unique_ptr<nn::Model> model = train::load_model(r.weights, DType::f32, o.config, o.verify);
  const config::ModelConfig& cfg = model->config();
  r.arch = hf_arch_for(cfg);

  HfExportInfo info;
  info.dtype = o.dtype;
  info.max_position_embeddings = o.max_position_embeddings;
  if (info.max_position_embeddings == 0) info.max_position_embeddings = trained_seq_len(r.weights);
  if (info.max_position_embeddings == 0) info.max_position_embeddings = 2048;
  r.tokenizer = infer::find_tokenizer(r.weights);
  if (!r.tokenizer.empty()) {
    const data::Tokenizer tok = data::Tokenizer::load(r.tokenizer);
    GTA_CHECK(tok.vocab_size() <= cfg.vocab_size,
              "tokenizer {} has {} tokens but the model's vocabulary is {}: not the tokenizer of {}", r.tokenizer,
              tok.vocab_size(), cfg.vocab_size, r.weights);
    info.bos_token_id = tok.bos_id();
    info.eos_token_id = tok.eos_id();
    write_file_synced((out.tmp() / "tokenizer.model").string(), tok.model_bytes());
  }
  const nlohmann::json config_json = hf_config_json(cfg, info, r.weights);

  std::map<std::string, Tensor> params;
  for (const auto& [name, t] : model->params().all()) params[name] = t;
  const std::map<std::string, Tensor> tensors = to_hf_tensors(cfg, params, o.dtype);
  r.tensors = static_cast<int64_t>(tensors.size());
  io::save_safetensors((out.tmp() / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_file_synced((out.tmp() / "config.json").string(), config_json.dump(2) + "\n");
  out.commit();
  return r;
}

}  // namespace gta::interop
