// Finding and loading trained weights for evaluation and generation.
//
// A CHECKPOINT argument may be
//   - a .safetensors file (model.safetensors of a checkpoint, or an exported model),
//   - a checkpoint directory holding model.safetensors (<run>/checkpoints/step_N/), or
//   - a run directory: the newest <run>/checkpoints/step_N/ (largest N) holding model.safetensors.
// The weights file's __metadata__ "config" holds the model config JSON.
//
// TODO(merge): once src/train/checkpoint.h lands, resolve and load through it; this file keeps
// only what inference needs until then.
#pragma once
#include <memory>
#include <string>

#include "config/config.h"
#include "core/dtype.h"
#include "nn/model.h"

namespace gta::infer {

// The model.safetensors path `path` refers to; throws gta::Error saying what was looked for.
std::string resolve_weights(const std::string& path);

// The model config recorded in a weights file's metadata (header read only).
config::ModelConfig read_weights_config(const std::string& weights_path);

struct LoadedModel {
  std::unique_ptr<nn::Model> model;
  std::string weights_path;  // the resolved model.safetensors
};

// Resolves `path`, builds the model from the recorded config and loads the weights (converted
// to `dtype`). Errors name the file and what was wrong (missing, truncated, bad config, shapes).
LoadedModel load_model(const std::string& path, DType dtype = DType::f32);

// tokenizer.model recorded with a checkpoint: looked for beside the weights and, when they sit in
// <run>/checkpoints/step_N/, in <run>/checkpoints/ and <run>/. "" when there is none.
std::string find_tokenizer(const std::string& weights_path);

}  // namespace gta::infer
