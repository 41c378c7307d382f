// gta eval CHECKPOINT --data SHARDS [--batches N] [--batch-size B] [--seq-len T] [--json]
//   [--per-token FILE [--eos-id N]] [--config MODEL.yaml]:
// mean loss, perplexity and bits per byte of a checkpoint over a shard set (src/infer/evaluate.h),
// and the loss of every token and document (src/infer/per_token_log.h).
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "core/error.h"
#include "core/sha256.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "infer/evaluate.h"
#include "infer/per_token_log.h"
#include "infer/tokenizer_lookup.h"
#include "train/checkpoint.h"

namespace gta::cli {

namespace {

struct EvalCliOptions {
  std::string device = "auto";
  std::string checkpoint;
  std::vector<std::string> data;
  std::string per_token, config;
  int eos_id = -1;  // -1: the tokenizer's
  infer::EvalOptions eval;
  bool json = false;
  bool no_verify = false;
};

void run_eval(const EvalCliOptions& o) {
  GTA_CHECK(o.eval.batch_size >= 1, "--batch-size must be >= 1, got {}", o.eval.batch_size);
  GTA_CHECK(o.eval.seq_len >= 1, "--seq-len must be >= 1, got {}", o.eval.seq_len);
  GTA_CHECK(o.eval.max_batches >= 0, "--batches must be >= 0 (0 = every window), got {}", o.eval.max_batches);
  // A missing shard fails before the (slower) weight load.
  const std::vector<std::string> shards = data::expand_shard_paths(o.data);
  GTA_CHECK(o.eos_id >= -1, "--eos-id must be >= 0, got {}", o.eos_id);
  // Resolved once, so the run's newest checkpoint cannot change between the lookups below.
  const std::string weights = train::resolve_model_weights(o.checkpoint).source;
  std::optional<config::ModelConfig> fallback;
  if (!o.config.empty()) fallback = train::model_config_for_weights(o.config, weights);
  std::unique_ptr<nn::Model> model = train::load_model(weights, DType::f32, fallback, !o.no_verify);
  model->params().move_to(resolve_device(o.device, 0, "--device"));
  infer::EvalOptions eo = o.eval;
  const std::string tok = infer::find_tokenizer(weights);  // the tokenizer of the run, if recorded
  if (!tok.empty()) eo.tokenizer_sha256 = sha256_file(tok);
  infer::EvalResult r;
  if (o.per_token.empty()) {
    r = infer::evaluate(*model, o.data, eo);
  } else {
    // Documents end at the end-of-document id: --eos-id, else the tokenizer's EOS.
    int eos = o.eos_id;
    if (eos < 0 && !tok.empty()) eos = data::Tokenizer::load(tok).eos_id();
    infer::PerTokenLog log(o.per_token, eos, shards);
    r = infer::evaluate(*model, o.data, eo, [&](const infer::TokenLoss& t) { log.add(t); });
    log.finish();
  }
  const config::ModelConfig& cfg = model->config();
  if (o.json) {
    nlohmann::json j = r.to_json();
    j["checkpoint"] = weights;
    j["attention"] = cfg.attention.type;
    j["seq_len"] = o.eval.seq_len;
    j["batch_size"] = o.eval.batch_size;
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("checkpoint      %s (%s attention, %lld parameters)\n", weights.c_str(),
              cfg.attention.type.c_str(), static_cast<long long>(model->params().count()));
  std::printf("data            %zu shard(s), %lld windows of %lld tokens; evaluated %lld in %lld batches\n",
              r.shards.size(), static_cast<long long>(r.total_windows), static_cast<long long>(o.eval.seq_len),
              static_cast<long long>(r.windows), static_cast<long long>(r.batches));
  std::printf("loss            %.6f nats/token\n", r.loss);
  std::printf("perplexity      %.4f\n", r.perplexity);
  if (std::isfinite(r.bits_per_byte))
    std::printf("bits per byte   %.6f (%.4f bytes/token over the shard set)\n", r.bits_per_byte, r.bytes_per_token);
  else
    std::printf("bits per byte   n/a (the shards record no byte count: llm.c .bin shards carry none)\n");
  if (r.shard_tokenizer_sha256.empty())
    std::printf("tokenizer       not checked (the shards record no tokenizer hash: llm.c .bin shards carry none)\n");
  std::printf("tokens          %lld scored in %.2f s\n", static_cast<long long>(r.tokens), r.seconds);
}

}  // namespace

void register_eval(CLI::App& app) {
  auto o = std::make_shared<EvalCliOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Loss, perplexity and bits per byte of a checkpoint on HDF5 shards");
  cmd->add_option("--device", o->device, "cpu, cuda, cuda:N or auto (the GPU when there is one)");
  cmd->add_option("checkpoint", o->checkpoint,
                  "Checkpoint directory, run directory (newest checkpoint) or .safetensors file")
      ->required();
  cmd->add_option("--data", o->data, "Shard files, directories or globs (read sequentially)")
      ->required()
      ->expected(1, -1);
  cmd->add_option("--batches", o->eval.max_batches, "Evaluate only the first N batches (0: every window)")
      ->capture_default_str();
  cmd->add_option("--batch-size", o->eval.batch_size, "Windows per batch")
      ->capture_default_str();
  cmd->add_option("--seq-len", o->eval.seq_len, "Tokens per window T (each window has T targets)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->add_option("--per-token", o->per_token,
                  "Write the loss of every scored token and of every document to this file (JSON lines)");
  cmd->add_option("--eos-id", o->eos_id,
                  "--per-token: the token id that ends a document (default: the tokenizer's EOS)");
  cmd->add_option("--config", o->config,
                  "Model config (YAML with a model: section) for weights without gta metadata")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--no-verify", o->no_verify, "skip the SHA-256 check of checkpoint files against their trainer.json (for huge files)");
  cmd->callback([o] { run_eval(*o); });
}

}  // namespace gta::cli
