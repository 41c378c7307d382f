// Training checkpoints.
//
// Layout: <out_dir>/checkpoints/step_<000123>/ (the step zero-padded to 6 digits, wider when
// needed) holding
//   model.safetensors      the parameters under their Hugging Face names, in their own dtype;
//                          metadata "config" = the model config JSON, "format" = "gta", "step"
//   optimizer.safetensors  the AdamW state (optim::AdamW::state() tensors); metadata "step" =
//                          the optimizer step count, "format" = "gta-adamw"
//   trainer.json           {"format": "gta-checkpoint", "version": 1, "step", "loader" (the data
//                          loader state), "rng" (5 integers), "config" (the full run config
//                          JSON), "model_config", "optimizer_step", "extra" (metrics so far:
//                          tokens seen, ...), "sha256" ({file name: SHA-256 hex} of the two
//                          .safetensors files, hashed as they were written)}
// Loading checks both files against their recorded digests (unless told not to: --no-verify),
// so a flipped byte is refused instead of trained or evaluated on; and the "step" against the
// directory's name.
//
// Atomicity: everything is written into step_<n>.tmp-<pid>/ (files synced), which is then renamed
// to step_<n> (an existing step_<n> is swapped out atomically, then deleted). Only after that are
// older checkpoints pruned to the newest `keep`, each renamed to step_<n>.del-<pid> before it is
// deleted (a kill mid-delete never leaves a half-deleted step_<n>). A save that fails removes its
// temporary directory and leaves every existing checkpoint as it was. Temporary directories left
// by dead processes, and .del-* leftovers, are removed by the next successful save.
//
// A directory counts as a (complete) checkpoint when its name is step_<digits> exactly and it
// holds all three files; .tmp-* directories and directories missing a file are ignored.
//
// Only one process (rank 0) writes to an out_dir; `gta train` holds the run directory's lock
// (train/run_dir.h) while it does.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/tensor.h"
#include "nn/model.h"
#include "nn/params.h"
#include "optim/adamw.h"

namespace gta::train {

constexpr int kCheckpointVersion = 1;  // trainer.json "version" this build writes and reads

struct TrainerState {
  int64_t step = 0;                                 // optimizer steps completed
  nlohmann::json loader = nlohmann::json::object(); // data::DataLoader::state()
  std::array<uint64_t, 5> rng{};                    // Rng::state()
  nlohmann::json config = nlohmann::json::object(); // config::to_json(RunConfig)
  nlohmann::json extra = nlohmann::json::object();  // metrics so far (tokens_seen, ...)
};

struct Checkpoint {
  std::string dir;
  std::map<std::string, Tensor> model;  // HF names -> tensors (CPU, stored dtype)
  config::ModelConfig model_config;
  optim::AdamWState optimizer;          // tensors (CPU) and step count
  TrainerState trainer;
};

// "step_000123".
std::string checkpoint_dir_name(int64_t step);
// <out_dir>/checkpoints
std::string checkpoints_root(const std::string& out_dir);

// Saves a checkpoint of `step` (= state.step) and prunes to the newest `keep` (0 = keep all).
// Returns the checkpoint directory. Errors (gta::Error) name the path and the cause.
// `optimizer` is the full AdamW state (AdamW::state(), or dist::Zero1::gather_state() of a
// sharded one).
std::string save_checkpoint(const std::string& out_dir, const nn::Params& params, const config::ModelConfig& model_cfg,
                            const optim::AdamWState& optimizer, const TrainerState& state, int64_t keep);
inline std::string save_checkpoint(const std::string& out_dir, const nn::Model& model,
                                   const optim::AdamWState& optimizer, const TrainerState& state, int64_t keep) {
  return save_checkpoint(out_dir, model.params(), model.config(), optimizer, state, keep);
}
inline std::string save_checkpoint(const std::string& out_dir, const nn::Model& model, const optim::AdamW& opt,
                                   const TrainerState& state, int64_t keep) {
  return save_checkpoint(out_dir, model, opt.state(), state, keep);
}

struct CheckpointInfo {
  int64_t step = 0;
  std::string dir;
};
// The complete checkpoints of a run, oldest first (empty when there is no checkpoints directory).
std::vector<CheckpointInfo> list_checkpoints(const std::string& out_dir);
// The newest complete checkpoint's directory, if any.
std::optional<std::string> latest_checkpoint(const std::string& out_dir);

// Reads a checkpoint directory. A missing or corrupt file is a gta::Error naming it (and, when
// the run has older checkpoints, which one to fall back to); a trainer.json of another format
// version is refused with both versions named.
Checkpoint load_checkpoint(const std::string& dir, bool verify = true);

// Copies a loaded checkpoint into a model's parameters and an optimizer (the caller restores the
// loader and RNG from checkpoint.trainer). Errors name the checkpoint's files.
void restore_checkpoint(const Checkpoint& ckpt, nn::Params& params, optim::AdamW& opt);

// Weights for inference (`gta eval`, `gta generate`). `path` may be
//   - a .safetensors file: a checkpoint's model.safetensors, an exported model, a foreign file;
//   - a directory holding model.safetensors, taken as it is: a checkpoint directory, or an
//     exported model (a directory with model.safetensors alone); only the weights are read, so a
//     directory named explicitly need not be a complete checkpoint;
//   - a run directory (an out_dir, no model.safetensors of its own): the model.safetensors of its
//     newest complete checkpoint (list_checkpoints: step_<digits> holding all three files;
//     .tmp-* and incomplete directories are ignored, exactly as for resuming).
// The config comes from the file's "config" metadata (absent for foreign files without it), the
// step from its "step" metadata, the context from the trainer.json beside a checkpoint's
// model.safetensors. Errors (gta::Error) name the path and say what was looked for.
struct ModelWeightsInfo {
  std::string source;  // the .safetensors file `path` refers to
  std::optional<config::ModelConfig> config;
  int64_t step = -1;  // the checkpoint's step, -1 when unknown
  // The model's context: the sequence length it was trained with (train.seq_len in the
  // checkpoint's trainer.json); 0 when unknown (a bare .safetensors file).
  int64_t context = 0;
};
// Resolves `path` and reads the file's header only (no tensor data): a cheap look at the config
// and vocabulary before the weight load.
ModelWeightsInfo resolve_model_weights(const std::string& path);

struct ModelWeights : ModelWeightsInfo {
  std::map<std::string, Tensor> tensors;  // HF names -> tensors (CPU, stored dtype)
};
// Resolves `path` (as resolve_model_weights) and reads the whole file; a checkpoint's
// model.safetensors is first checked against the SHA-256 in its trainer.json (when `verify`).
ModelWeights load_model_weights(const std::string& path, bool verify = true);

// The model config for weights that carry none (`--config MODEL.yaml` of eval, generate and
// export): the YAML's model section (config::load_model_config), with vocab_size 0 ("from the
// tokenizer") taken from the rows of the weights file's model.embed_tokens.weight. `weights` is
// a resolved .safetensors file (resolve_model_weights(...).source); only its header is read.
config::ModelConfig model_config_for_weights(const std::string& yaml_path, const std::string& weights);

// Builds a model from load_model_weights(path): its config (or `fallback` when the file has
// none; an error when neither exists) and its weights (converted to `dtype`). Errors name the
// file and what was wrong (missing, truncated, no or bad config, shapes that do not match).
std::unique_ptr<nn::Model> load_model(const std::string& path, DType dtype = DType::f32,
                                      const std::optional<config::ModelConfig>& fallback = std::nullopt,
                                      bool verify = true);

}  // namespace gta::train
