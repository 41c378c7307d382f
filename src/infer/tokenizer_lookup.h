// Finding the tokenizer recorded with trained weights, for evaluation and generation.
// (The weights themselves are resolved and loaded by src/train/checkpoint.h:
// train::resolve_model_weights, train::load_model_weights, train::load_model.)
#pragma once
#include <string>

namespace gta::infer {

// tokenizer.model recorded with a checkpoint: looked for beside the weights and, when they sit in
// <run>/checkpoints/step_N/, in <run>/checkpoints/ and <run>/. "" when there is none.
std::string find_tokenizer(const std::string& weights_path);

}  // namespace gta::infer
