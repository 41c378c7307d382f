// `gta import DIR --out OUT`: a transformers model directory (LlamaForCausalLM: MHA, GQA, MQA;
// DeepseekV3ForCausalLM with dense layers and no query compression: MLA; or what `gta export
// --hf` wrote for any type) as a gta model directory that `gta eval`, `gta generate`, `gta
// export` and `train.init_from` accept:
//   OUT/model.safetensors   the parameters in f32 under gta's names, metadata "format" "gta",
//                           "config" (the model config JSON) and "source" (DIR)
//   OUT/tokenizer.model     DIR's SentencePiece model, when it has one
// DIR holds config.json and model.safetensors, or model.safetensors.index.json and the shards it
// names (save_pretrained's two layouts). Every setting and tensor is checked: what gta cannot
// reproduce exactly is refused, naming the file and the key or tensor (interop/hf_config.h,
// interop/hf_tensors.h).
#pragma once
#include <string>
#include <vector>

#include "interop/hf_config.h"

namespace gta::interop {

struct HfImportOptions {
  std::string hf_dir;
  std::string out_dir;
  bool overwrite = false;  // replace a non-empty out_dir
};

struct HfImportResult {
  HfArch arch = HfArch::llama;
  config::ModelConfig model;
  std::vector<std::string> weight_files;  // the .safetensors files read
  std::string tokenizer;                  // the tokenizer copied, "" when none
};

// Throws gta::Error naming the file and what is wrong; leaves out_dir untouched on failure.
HfImportResult import_hf(const HfImportOptions& o);

}  // namespace gta::interop
