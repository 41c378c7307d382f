// Autoregressive generation with a KV cache: the prompt goes through the model once (prefill,
// optionally in chunks) filling the cache, then one token per step is sampled and fed back
// (decode), each step attending over the cache instead of recomputing the prefix.
//
// B sequences decode together; the KV cache keeps one length for the whole batch, so all
// prompts must have the same length (e.g. --num-samples copies of one prompt). Sequence b
// samples with its own Rng seeded from (seed, b), so its output does not depend on B.
// A sequence stops at EOS (kept in its output) or after max_new_tokens; finished sequences are
// still fed through the batch until every sequence is done.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "infer/sampler.h"
#include "nn/model.h"

namespace gta::infer {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingOptions sampling;
  uint64_t seed = 0;
  int64_t eos_id = -1;         // stop a sequence when it samples this id (-1: never)
  int64_t prefill_chunk = 0;   // prompt tokens per prefill forward (0: the whole prompt at once)
  bool logprobs = false;       // record ln p(token) of each generated token (GenerateResult::logprobs)
  // The model's context in tokens (the sequence length it was trained with): prompt and new
  // tokens must fit in it, and the KV cache never grows past it. 0: unknown, no limit.
  int64_t context = 0;
};

struct GenerateStats {
  int64_t batch = 0, prompt_len = 0;
  int64_t prefill_tokens = 0, decode_tokens = 0;  // tokens run through the model (all sequences)
  double prefill_seconds = 0, decode_seconds = 0;  // decode includes sampling
  int64_t kv_cache_bytes = 0;                      // the cache as grown by the end (batch x tokens cached)
  double prefill_tokens_per_s() const { return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0; }
  double decode_tokens_per_s() const { return decode_seconds > 0 ? decode_tokens / decode_seconds : 0; }
  nlohmann::json to_json() const;
};

struct GenerateResult {
  std::vector<std::vector<int32_t>> tokens;  // per sequence: the generated tokens only
  // With GenerateOptions::logprobs, per sequence and token: ln softmax(logits)[token], the model's
  // own distribution over its whole vocabulary (before temperature, top-k and top-p).
  std::vector<std::vector<double>> logprobs;
  GenerateStats stats;
};

// Runs the prompt tokens [B, T] (i32) through the model with `cache` in chunks of `chunk`
// tokens (0: all at once) and returns the logits of the last prompt position [B, V].
Tensor prefill(const nn::Model& model, const Tensor& tokens, nn::KVCache& cache, int64_t chunk = 0);

// Generates continuations of `prompts` (equal lengths >= 1, ids < the model's vocab).
GenerateResult generate(const nn::Model& model, const std::vector<std::vector<int32_t>>& prompts,
                        const GenerateOptions& opt);

}  // namespace gta::infer
