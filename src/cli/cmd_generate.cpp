// gta generate CHECKPOINT --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K]
//   [--top-p P] [--seed S] [--tokenizer PATH] [--num-samples N] [--json] [--config MODEL.yaml]
// Prints the prompt and its continuation(s) on stdout; speed and KV-cache size on stderr. With
// --json, one JSON object instead: the prompt's ids and, per sample, the generated ids, their
// pieces, their log-probabilities under the model and the decoded text.
// The prompt is preceded by EOS, the document boundary that training documents follow.
#include <cstdio>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "core/error.h"
#include "data/tokenizer.h"
#include "infer/generate.h"
#include "infer/tokenizer_lookup.h"
#include "train/checkpoint.h"

namespace gta::cli {

namespace {

struct GenerateCliOptions {
  std::string device = "auto";
  std::string checkpoint, prompt, tokenizer, config;
  int64_t num_samples = 1;
  bool across_documents = false;
  bool no_verify = false;
  bool json = false;
  infer::GenerateOptions gen;
};

// --json: {"prompt_ids", "samples": [{"ids", "pieces", "logprobs", "text"}], "stats"}; the ids
// include the EOS that ends a sample (its text does not).
void print_json(const data::Tokenizer& tok, const std::vector<int32_t>& prompt, const infer::GenerateResult& res) {
  nlohmann::json samples = nlohmann::json::array();
  for (size_t s = 0; s < res.tokens.size(); ++s) {
    nlohmann::json pieces = nlohmann::json::array();
    std::vector<int32_t> text_ids;
    for (int32_t t : res.tokens[s]) {
      pieces.push_back(tok.id_to_piece(t));
      if (t != tok.eos_id()) text_ids.push_back(t);
    }
    samples.push_back({{"ids", res.tokens[s]}, {"pieces", pieces}, {"logprobs", res.logprobs[s]},
                       {"text", tok.decode(text_ids)}});
  }
  const nlohmann::json j = {{"prompt_ids", prompt}, {"samples", samples}, {"stats", res.stats.to_json()}};
  std::printf("%s\n", j.dump(2).c_str());
}

void run_generate(const GenerateCliOptions& o) {
  GTA_CHECK(o.num_samples >= 1, "--num-samples must be >= 1, got {}", o.num_samples);
  GTA_CHECK(o.gen.max_new_tokens >= 0, "--max-new-tokens must be >= 0, got {}", o.gen.max_new_tokens);
  GTA_CHECK(o.gen.prefill_chunk >= 0, "--prefill-chunk must be >= 0, got {}", o.gen.prefill_chunk);
  o.gen.sampling.validate();
  // Check the checkpoint's header and the tokenizer before the (slower) weight load.
  const train::ModelWeightsInfo info = train::resolve_model_weights(o.checkpoint);
  const std::string& weights = info.source;
  std::optional<config::ModelConfig> fallback;
  if (!o.config.empty()) fallback = train::model_config_for_weights(o.config, weights);
  GTA_CHECK(info.config.has_value() || fallback.has_value(),
            "{}: no model config in its metadata (key 'config'; not written by gta?); pass --config MODEL.yaml",
            weights);
  const int64_t V = info.config ? info.config->vocab_size : fallback->vocab_size;
  std::string tok_path = o.tokenizer;
  if (tok_path.empty()) {
    tok_path = infer::find_tokenizer(weights);
    GTA_CHECK(!tok_path.empty(),
              "no tokenizer.model recorded with checkpoint {} (looked beside it and in its run directory); "
              "pass --tokenizer PATH",
              weights);
  }
  data::Tokenizer tok = data::Tokenizer::load(tok_path);
  GTA_CHECK(tok.vocab_size() <= V,
            "tokenizer {} has {} tokens but the model's vocabulary ({}) is {}: not the tokenizer this model was "
            "trained with",
            tok_path, tok.vocab_size(), weights, V);
  // On a GPU the weights are bf16, so that decoding takes the decode kernels and the CUDA graph.
  const Device dev = resolve_device(o.device, 0, "--device");
  std::unique_ptr<nn::Model> model =
      train::load_model(weights, dev.is_cuda() ? DType::bf16 : DType::f32, fallback, !o.no_verify);
  model->params().move_to(dev);

  // Training documents follow an EOS, so the prompt does too (when the tokenizer has one).
  std::vector<int32_t> prompt;
  if (tok.eos_id() >= 0) prompt.push_back(tok.eos_id());
  const size_t n_prefix = prompt.size();
  tok.encode_append(o.prompt, prompt);
  infer::GenerateOptions gen = o.gen;
  gen.context = info.context;
  // By default a sample ends with its document (EOS); --across-documents keeps going and prints
  // each document boundary as a blank line.
  gen.eos_id = o.across_documents ? -1 : tok.eos_id();
  gen.sampling.vocab_limit = tok.vocab_size();  // ids past the tokenizer cannot be decoded
  gen.logprobs = o.json;
  infer::GenerateResult res =
      infer::generate(*model, std::vector<std::vector<int32_t>>(static_cast<size_t>(o.num_samples), prompt), gen);
  if (o.json) {
    print_json(tok, prompt, res);
    return;
  }

  for (size_t s = 0; s < res.tokens.size(); ++s) {
    if (res.tokens.size() > 1) std::printf("%s--- sample %zu ---\n", s ? "\n" : "", s + 1);
    std::vector<int32_t> ids(prompt.begin() + static_cast<std::ptrdiff_t>(n_prefix), prompt.end());
    std::string text;
    for (int32_t t : res.tokens[s]) {
      if (t != tok.eos_id()) {
        ids.push_back(t);
        continue;
      }
      text += tok.decode(ids) + "\n\n";
      ids.clear();
    }
    text += tok.decode(ids);
    std::printf("%s\n", text.c_str());
  }
  std::fflush(stdout);
  const infer::GenerateStats& st = res.stats;
  std::fprintf(stderr,
               "[%s attention] prefill %lld tokens (%lld x %lld) at %.1f tokens/s; decode %lld tokens at %.1f "
               "tokens/s; KV cache %lld bytes\n",
               model->config().attention.type.c_str(), static_cast<long long>(st.prefill_tokens),
               static_cast<long long>(st.batch), static_cast<long long>(st.prompt_len), st.prefill_tokens_per_s(),
               static_cast<long long>(st.decode_tokens), st.decode_tokens_per_s(),
               static_cast<long long>(st.kv_cache_bytes));
}

}  // namespace

void register_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Sample continuations of a prompt from a checkpoint (KV-cached)");
  cmd->add_option("--device", o->device, "cpu, cuda, cuda:N or auto (the GPU when there is one)");
  cmd->add_option("checkpoint", o->checkpoint,
                  "Checkpoint directory, run directory (newest checkpoint) or .safetensors file")
      ->required();
  cmd->add_option("--prompt,-p", o->prompt, "Prompt text")->required();
  cmd->add_option("--max-new-tokens,-n", o->gen.max_new_tokens, "Tokens to generate per sample (fewer at EOS)")
      ->capture_default_str();
  cmd->add_option("--temperature,-t", o->gen.sampling.temperature, "Softmax temperature (0: greedy)")
      ->capture_default_str();
  cmd->add_option("--top-k", o->gen.sampling.top_k, "Sample among the K most likely tokens (0: all)")
      ->capture_default_str();
  cmd->add_option("--top-p", o->gen.sampling.top_p, "Nucleus sampling: smallest set with this probability mass")
      ->capture_default_str();
  cmd->add_option("--seed", o->gen.seed, "Sampling seed (sample i uses a stream derived from it)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", o->tokenizer,
                  "SentencePiece model (default: tokenizer.model beside the checkpoint or in its run directory)");
  cmd->add_option("--num-samples", o->num_samples, "Continuations decoded together as one batch")
      ->capture_default_str();
  cmd->add_flag("--across-documents", o->across_documents,
                "Do not stop at the end of a document (EOS); print document boundaries as blank lines");
  cmd->add_option("--prefill-chunk", o->gen.prefill_chunk, "Prompt tokens per prefill forward (0: all at once)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json,
                "Print JSON: the prompt's ids and, per sample, the token ids, pieces, log-probabilities and text");
  cmd->add_option("--config", o->config, "Model config (YAML with a model: section) for weights without gta metadata")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--no-verify", o->no_verify, "skip the SHA-256 check of checkpoint files against their trainer.json (for huge files)");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace gta::cli
