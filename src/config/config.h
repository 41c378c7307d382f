// The run configuration: YAML file (+ `base:` includes, + --set overrides) -> validated structs.
//
// Every error is a gta::Error naming where the value came from (file:line:column, the override,
// or the JSON source), the full key path and what was expected, e.g.
//   configs/a.yaml:7:3: train.stpes: unknown key (did you mean 'steps'?)
//   configs/a.yaml:9:10: train.steps: expected an integer, got 'abc'
//   configs/a.yaml:14:18: model.attention.n_q_heads (3) must divide model.n_heads (4)
//
// Includes: a top-level `base: relative/path.yaml` (relative to the including file) is loaded
// first and the including file's keys win, map by map. When a file (or a --set) changes
// model.attention.type, attention keys inherited from the base that do not belong to the new
// type are dropped; keys written next to the type must belong to it.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gta::config {

// The `model.attention` section. Which keys are allowed, and the rules they obey, depend on
// `type`: the table of attention types (config/attention_types.h) owns both, and
// docs/attention.md ("Config keys", "Validation rules") explains them.
struct AttentionConfig {
  std::string type = "gqa";
  int n_kv_heads = 0, n_q_heads = 0, n_k_heads = 0, n_v_heads = 0, d_qk = 0, d_latent = 0, d_c = 0,
      d_rope = 0, d_nope = 0, d_v = 0;
  bool qkv_bias = false;
  bool operator==(const AttentionConfig&) const = default;
};

// The attention type names, in the order of the table (config/attention_types.h).
const std::vector<std::string>& attention_types();
// The attention keys (besides `type`) that belong to `type`; throws on an unknown type.
const std::vector<std::string>& attention_keys(const std::string& type);

struct ModelConfig {
  int64_t vocab_size = 0;  // 0 = take it from the tokenizer at train time
  int d_model = 0, n_layers = 0, d_ff = 0, n_heads = 0;
  double norm_eps = 1e-5, rope_theta = 10000;
  bool tie_embeddings = true;
  AttentionConfig attention;

  int head_dim() const;       // d_model / n_heads
  int gta_expansion() const;  // e = d_model / (n_q_heads * d_latent) for gta; 0 for other types

  // The head counts and widths of the one attention primitive that this config's type reduces to
  // (docs/attention.md, "One primitive underneath"), as the table of attention types
  // (config/attention_types.h) derives them. For gva/gha n_v counts the value heads of width hd.
  int n_kv() const;  // kv heads of mha/gqa/mqa (h, n_kv_heads, 1); n_k() for the other types
  int n_q() const;
  int n_k() const;
  int n_v() const;
  int qk_dim() const;
  int v_dim() const;
  int rope_dim() const;
  bool has_qkv_bias() const;  // attention.qkv_bias (always false for mla)
  // KV-cache elements per token per layer (the golden metadata's kv_cache_elems_per_token_per_layer).
  int64_t kv_cache_elems_per_token_per_layer() const;
  // Number of parameters, with the given vocabulary (docs/attention.md, "Parameter counts").
  int64_t num_parameters(int64_t vocab) const;
  int64_t num_parameters() const { return num_parameters(vocab_size); }

  // Throws gta::Error naming the key and the rule broken (docs/attention.md, "Validation rules").
  void validate() const;
  bool operator==(const ModelConfig&) const = default;
};

struct DataConfig {
  std::string train;      // shard file, directory or glob (relative to the current directory)
  std::string val;        // same, for evaluation
  std::string tokenizer;  // tokenizer model
  std::string mode = "random";  // random | sequential
  bool operator==(const DataConfig&) const = default;
};

struct TrainConfig {
  int64_t steps = 1000;
  int64_t batch_size = 8;           // per-rank micro-batch, in sequences
  int64_t global_batch_tokens = 0;  // 0 = batch_size*seq_len*world; else a multiple of it (grad accumulation)
  int64_t seq_len = 256;
  uint64_t seed = 1337;
  std::string out_dir = "runs/default";
  std::string device = "auto";  // cpu | cuda | cuda:N | auto
  std::string dtype = "f32";    // f32 | bf16 | f64 (f64: exactness checks on the CPU)
  int64_t log_every = 10;
  // Fine-tuning start: the weights of a checkpoint, run directory, .safetensors file or `gta
  // import` directory (of the same model) replace the random initialisation of a fresh run; the
  // optimizer, schedule and data start from step 0. "" = random initialisation. Ignored by --resume
  // (the run's own checkpoint holds its weights).
  std::string init_from;

  int64_t tokens_per_micro_batch(int world) const { return batch_size * seq_len * world; }
  // Micro-batches each rank accumulates per optimizer step; throws naming
  // train.global_batch_tokens when it is not a multiple of batch_size*seq_len*world.
  int64_t grad_accum_steps(int world) const;
  // The tokens of one optimizer step over all ranks.
  int64_t global_tokens(int world) const { return tokens_per_micro_batch(world) * grad_accum_steps(world); }
  bool operator==(const TrainConfig&) const = default;
};

struct OptimConfig {
  double lr = 3e-4, min_lr_ratio = 0.1, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8,
         grad_clip = 1.0;  // grad_clip 0 = no clipping
  int64_t warmup_steps = 100;
  int64_t decay_steps = 0;  // length of the schedule; 0 = train.steps (a run may stop before it ends)
  std::string schedule = "cosine";  // cosine | linear | constant
  bool decay_norms_and_biases = false, decay_embeddings = false;
  bool operator==(const OptimConfig&) const = default;
};

struct CheckpointConfig {
  int64_t every = 500;  // steps between checkpoints; 0 = only at the end
  int64_t keep = 3;     // newest checkpoints kept; 0 = keep all
  bool operator==(const CheckpointConfig&) const = default;
};

struct EvalConfig {
  int64_t every = 200;   // steps between evaluations; 0 = only at the end
  int64_t batches = 20;  // micro-batches per evaluation
  bool operator==(const EvalConfig&) const = default;
};

struct DistConfig {
  double timeout_s = 600;  // a collective that takes longer ends every rank with an error
  // Work rank 0 does alone while the others wait (evaluation, checkpoint writes): a separate,
  // longer budget, so that a slow evaluation of a healthy job is not taken for a dead rank.
  double rank0_timeout_s = 7200;
  double bucket_mb = 25;   // gradients are all-reduced in buckets of about this size
  // ZeRO-1 (true or false): with several ranks, each keeps the AdamW state of only the parameters
  // it owns (whole parameters, balanced by element count) and broadcasts them after its update;
  // checkpoints are the same as without it (distributed/zero1.h). No effect on one process.
  bool zero1 = false;
  bool operator==(const DistConfig&) const = default;
};

// What a run reports besides metrics.jsonl and the progress line (rank 0).
struct LoggingConfig {
  bool tensorboard = true;  // TensorBoard event files under train.out_dir/tb/ (train/tensorboard.h)
  // The peak FLOP/s of one device in TFLOP/s (989 for an H100/H200 SXM's dense bf16); when set,
  // train records carry mfu = tokens/s * model FLOPs per token / (peak * ranks). 0 = unknown.
  double peak_tflops = 0;
  bool operator==(const LoggingConfig&) const = default;
};

struct RunConfig {
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  OptimConfig optim;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  DistConfig dist;
  LoggingConfig logging;
  // Throws gta::Error naming the key and what was expected (model rules included).
  void validate() const;
  bool operator==(const RunConfig&) const = default;
};

// Loads a YAML run config. `overrides` are "key.path=value" strings (value parsed as a YAML
// scalar), e.g. "train.steps=50", "model.attention.type=gta"; applied in order after includes.
// The result is validated.
RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides = {});
// Parses YAML text; `source` names it in errors; `base:` resolves relative to `base_dir`.
RunConfig parse_run_config(const std::string& yaml_text, const std::string& source,
                           const std::vector<std::string>& overrides = {}, const std::string& base_dir = ".");
// A file whose only section is `model:` (or a full run config: other sections are then checked
// and ignored). Validated.
ModelConfig load_model_config(const std::string& yaml_path, const std::vector<std::string>& overrides = {});

// JSON forms, for checkpoints and golden files. to_json writes every field (attention: `type` and
// the keys of that type); from_json accepts missing keys (defaults), rejects unknown ones, and
// validates. `source` names the origin in errors. Round trips are exact.
ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& source = "model config JSON");
nlohmann::json to_json(const ModelConfig& m);
RunConfig run_config_from_json(const nlohmann::json& j, const std::string& source = "run config JSON");
nlohmann::json to_json(const RunConfig& c);
// The config as YAML text (for the run directory).
std::string to_yaml(const RunConfig& c);

}  // namespace gta::config
