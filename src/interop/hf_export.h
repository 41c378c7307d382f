// `gta export CHECKPOINT --hf DIR`: a gta model as a directory that transformers loads with
// AutoModelForCausalLM.from_pretrained(DIR) (MHA/GQA/MQA as Llama, MLA as DeepSeek-V3; GVA, GHA
// and GTA in gta's own layout, for which transformers has no class):
//   DIR/config.json         interop/hf_config.h
//   DIR/model.safetensors   the parameters (interop/hf_tensors.h), in f32 or bf16, metadata
//                           {"format": "pt"} as transformers expects
//   DIR/tokenizer.model     the run's SentencePiece model, when it has one
#pragma once
#include <optional>
#include <string>

#include "config/config.h"
#include "core/dtype.h"
#include "interop/hf_config.h"

namespace gta::interop {

struct HfExportOptions {
  std::string checkpoint;  // a checkpoint, run directory or .safetensors (train::resolve_model_weights)
  std::string out_dir;
  DType dtype = DType::f32;  // f32 or bf16
  bool overwrite = false;    // replace a non-empty out_dir
  bool verify = true;        // check the checkpoint's SHA-256 digests
  // The model config for weights without gta metadata (--config); otherwise the file's own.
  std::optional<config::ModelConfig> config;
  // config.json's max_position_embeddings; 0: the run's train.seq_len when the checkpoint's
  // trainer.json records it, else 2048.
  int64_t max_position_embeddings = 0;
};

struct HfExportResult {
  std::string weights;  // the .safetensors file exported
  HfArch arch = HfArch::llama;
  std::string tokenizer;  // the tokenizer copied, "" when none
  int64_t tensors = 0;
};

// Throws gta::Error naming the file and what is wrong; leaves out_dir untouched on failure.
HfExportResult export_hf(const HfExportOptions& o);

}  // namespace gta::interop
