// gta analyze: the paper's two motivating observations measured on a trained model.
//   (1) per layer, how similar the attention maps are (analysis/map_similarity.h), the reason
//       to share one map between heads;
//   (2) per layer, the singular-value spectrum of the cached values (analysis/value_spectrum.h),
//       the reason to cache them compressed.
// Over the first `windows` windows of T tokens of a shard set, read in order (the windows that
// `gta eval` reads first): one no-grad forward per window with the model's KV cache filled (its
// value entry is X's rows) and a probe on every layer's maps. Memory: one window's activations
// and cache, one block of query rows of one layer's maps, and a w x w Gram matrix per layer.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/model.h"

namespace gta::analysis {

struct AnalyzeOptions {
  int64_t windows = 8;    // windows analysed (fewer when the shards hold fewer)
  int64_t seq_len = 1024; // T
  // When set, shards that record a tokenizer SHA-256 must match it (the model's tokenizer).
  std::string tokenizer_sha256;
  void validate() const;  // gta::Error naming --windows or --seq-len when out of range
};

// The index, in a layer's cache layout, of the entry holding the values: "v" (MHA, GQA, MQA,
// GVA, GHA) or "latent" (GTA's value latent, MLA's compressed latent).
size_t value_entry(const std::vector<nn::CacheEntry>& layout);

// analysis.json without the "checkpoint" key: "attention", "model" (config), "windows",
// "seq_len", "tokens", "shards", "seconds", "definitions" (the formulas, in words) and "layers"
// [{"layer", "maps", "key_heads", "map_cosine" (M x M), "map_cosine_offdiag_mean", "map_js_bits"
// (M x M), "map_js_bits_offdiag_mean" (null when M = 1), "value_cache": {"entry", "heads",
// "width", "columns", "rows", "singular_values" (s_i / s_1), "s_max", "n90", "n99", "rank",
// "centered": {the same five of the centered X}}}].
// Throws gta::Error for bad options, shards that hold no window or do not fit the model.
nlohmann::json analyze(const nn::Model& model, const std::vector<std::string>& shard_specs, const AnalyzeOptions& opt);

}  // namespace gta::analysis
