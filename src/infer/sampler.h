// Next-token sampling from a row of logits.
//
//   temperature 0        greedy: the arg max (the lowest id among equal maxima), no random draw
//   temperature t > 0    p_i = softmax(logits / t), computed in double
//   top_k k > 0          keep the k most likely tokens (ties broken by lower id)
//   top_p p < 1          keep the smallest most-likely-first prefix whose mass reaches p
//                        (computed after top-k, over the renormalised kept mass; at least one)
//   vocab_limit n > 0    only ids < n can be drawn (a model vocabulary padded past the tokenizer's)
// then one uniform draw u from the Rng picks the token by inverse CDF over the kept tokens in
// most-likely-first order. The result depends only on the logits, the options and the Rng state.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace gta::infer {

struct SamplingOptions {
  double temperature = 1.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = no top-k cut
  double top_p = 1.0;        // 1 = no nucleus cut; must be in (0, 1]
  int64_t vocab_limit = 0;   // 0 = every id of the logits row
  // Throws gta::Error naming the option when a value is out of range.
  void validate() const;
};

// Picks a token from logits[0..n). Throws on n == 0 or when no logit is finite.
int32_t sample_token(const double* logits, int64_t n, const SamplingOptions& opt, Rng& rng);
inline int32_t sample_token(const std::vector<double>& logits, const SamplingOptions& opt, Rng& rng) {
  return sample_token(logits.data(), static_cast<int64_t>(logits.size()), opt, rng);
}

// The kept tokens and their renormalised probabilities, most likely first (what sample_token
// draws from; for tests and for showing a distribution). Greedy gives the arg max with p = 1.
std::vector<std::pair<int32_t, double>> sampling_distribution(const double* logits, int64_t n,
                                                              const SamplingOptions& opt);

// Samples one token per row of logits [B, V] (any float dtype or device; read to host) with
// rngs[b] for row b.
std::vector<int32_t> sample_rows(const Tensor& logits, const SamplingOptions& opt, std::vector<Rng>& rngs);

}  // namespace gta::infer
