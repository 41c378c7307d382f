// gta export CHECKPOINT --hf DIR [--dtype f32|bf16] [--overwrite] [--config MODEL.yaml]
//   [--max-position-embeddings N] [--no-verify]
// A checkpoint as a Hugging Face model directory (src/interop/hf_export.h).
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "interop/hf_export.h"
#include "train/checkpoint.h"

namespace gta::cli {

namespace {

struct ExportArgs {
  std::string checkpoint, hf_dir, dtype = "f32", config;
  int64_t max_position_embeddings = 0;
  bool overwrite = false, no_verify = false;
};

void run_export(const ExportArgs& a) {
  interop::HfExportOptions o;
  o.checkpoint = a.checkpoint;
  o.out_dir = a.hf_dir;
  GTA_CHECK(a.dtype == "f32" || a.dtype == "bf16", "--dtype must be f32 or bf16, got '{}'", a.dtype);
  o.dtype = dtype_from_name(a.dtype);
  o.overwrite = a.overwrite;
  o.verify = !a.no_verify;
  o.max_position_embeddings = a.max_position_embeddings;
  if (!a.config.empty())
    o.config = train::model_config_for_weights(a.config, train::resolve_model_weights(a.checkpoint).source);
  const interop::HfExportResult r = interop::export_hf(o);
  std::printf("exported %s as %s (%lld tensors, %s) to %s%s\n", r.weights.c_str(), interop::hf_arch_name(r.arch),
              static_cast<long long>(r.tensors), a.dtype.c_str(), a.hf_dir.c_str(),
              r.tokenizer.empty() ? " (no tokenizer.model recorded with it)" : ", with tokenizer.model");
}

}  // namespace

void register_export(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand("export", "Write a checkpoint as a Hugging Face model directory (transformers)");
  cmd->add_option("checkpoint", a->checkpoint,
                  "Checkpoint directory, run directory (newest checkpoint) or .safetensors file")
      ->required();
  cmd->add_option("--hf", a->hf_dir, "Output directory: config.json, model.safetensors, tokenizer.model")->required();
  cmd->add_option("--dtype", a->dtype, "Tensor dtype: f32 or bf16")->capture_default_str();
  cmd->add_flag("--overwrite", a->overwrite, "Replace the output directory when it is not empty");
  cmd->add_option("--config", a->config, "Model config (YAML with a model: section) for weights without gta metadata")
      ->check(CLI::ExistingFile);
  cmd->add_option("--max-position-embeddings", a->max_position_embeddings,
                  "config.json's max_position_embeddings (0: the run's train.seq_len, else 2048)")
      ->capture_default_str();
  cmd->add_flag("--no-verify", a->no_verify, "skip the SHA-256 check of checkpoint files against their trainer.json");
  cmd->callback([a] { run_export(*a); });
}

}  // namespace gta::cli
