// Held-out evaluation: mean next-token cross-entropy over a shard set read in sequential mode
// (every window of T+1 tokens once, in order; windows overlap by one token so every token after
// the first of each shard is a target exactly once), perplexity and bits per byte.
//
//   loss        = (sum over scored targets of -ln p(target)) / n_scored     (nats per token)
//   perplexity  = exp(loss)
//   bits/byte   = loss * n_scored / (n_bytes(scored tokens) * ln 2)
// The bytes of exactly the scored tokens are not recorded, so n_bytes(scored) is estimated as
// n_scored * (total bytes / total tokens of the shard set): bits/byte = loss / (bytes_per_token
// * ln 2). Exact when every window is evaluated (up to the first token of each shard and the
// tail shorter than a window); NaN when a shard does not record n_bytes.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/loader.h"
#include "nn/model.h"

namespace gta::infer {

struct EvalOptions {
  int64_t batch_size = 8;   // windows per forward
  int64_t seq_len = 256;    // T (targets per window)
  int64_t max_batches = 0;  // 0: every window of the shard set; else the first N batches
  // When set, shards that record a tokenizer SHA-256 must match it (the model's tokenizer).
  std::string tokenizer_sha256;
};

struct EvalResult {
  double loss = 0, perplexity = 0;
  double bits_per_byte = 0;    // NaN when the shards do not record their byte counts
  double bytes_per_token = 0;  // total bytes / total tokens of the shard set (0 when unknown)
  int64_t tokens = 0;          // targets scored
  int64_t windows = 0, total_windows = 0, batches = 0;
  double seconds = 0;
  std::vector<std::string> shards;
  // The tokenizer SHA-256 the shards record; "" when they record none (llm.c .bin shards), and
  // then EvalOptions::tokenizer_sha256 could not be checked against them.
  std::string shard_tokenizer_sha256;
  nlohmann::json to_json() const;  // bits_per_byte is null when unknown
};

// "0.912 bits/byte", or what the shards lack when bits per byte is unknown (.bin shards record no
// byte count): for progress lines and summaries.
std::string bits_per_byte_text(double bits_per_byte);

// Throws gta::Error when shards read by `loader` cannot feed a model of vocab_size: written with a
// vocabulary larger than the model's, or (when tokenizer_sha256 is set and the shards record theirs) with
// another tokenizer.
void check_shards_fit(const data::DataLoader& loader, int64_t vocab_size, const std::string& tokenizer_sha256);

// One scored target: its shard (an index into EvalResult::shards), its position in the shard
// (the token index; position 0 is never a target), its id and -ln p(token | the T tokens before
// it in its window).
struct TokenLoss {
  size_t shard = 0;
  uint64_t pos = 0;
  int32_t token = 0;
  double loss = 0;
};
// Receives every scored target, in shard order (`gta eval --per-token`).
using TokenLossSink = std::function<void(const TokenLoss&)>;

// Throws gta::Error when the shards are missing, hold no full window of T+1 tokens, or were
// written with a vocabulary larger than the model's or with another tokenizer; and when the
// loss is not finite (the weights hold NaN or Inf), naming the windows scored. With a sink, the
// losses are computed per target from the logits (log-sum-exp in f64) and the mean is their mean.
EvalResult evaluate(const nn::Model& model, const std::vector<std::string>& shard_specs, const EvalOptions& opt,
                    const TokenLossSink& sink = {});

// The checks of evaluate() that need no model, for a model of `vocab_size`: a trainer runs them
// on data.val before its first step, so that a bad validation set fails before any work is lost.
void check_eval_data(const std::vector<std::string>& shard_specs, int64_t vocab_size, const EvalOptions& opt);

}  // namespace gta::infer
