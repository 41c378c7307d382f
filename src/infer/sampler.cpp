#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace gta::infer {

void SamplingOptions::validate() const {
  GTA_CHECK(std::isfinite(temperature) && temperature >= 0, "temperature must be >= 0 (0 = greedy), got {}",
            temperature);
  GTA_CHECK(top_k >= 0, "top-k must be >= 0 (0 = off), got {}", top_k);
  GTA_CHECK(top_p > 0 && top_p <= 1, "top-p must be in (0, 1] (1 = off), got {}", top_p);
  GTA_CHECK(vocab_limit >= 0, "vocab limit must be >= 0 (0 = off), got {}", vocab_limit);
}

std::vector<std::pair<int32_t, double>> sampling_distribution(const double* logits, int64_t n,
                                                              const SamplingOptions& opt) {
  opt.validate();
  GTA_CHECK(n > 0, "cannot sample from an empty logits row");
  if (opt.vocab_limit > 0) n = std::min(n, opt.vocab_limit);
  // Candidates with a finite logit (-inf marks a banned token; NaN is never drawn).
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(logits[i])) ids.push_back(static_cast<int32_t>(i));
  GTA_CHECK(!ids.empty(), "no finite logit among {} to sample from", n);
  auto before = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };

  if (opt.temperature == 0) {
    return {{*std::min_element(ids.begin(), ids.end(), before), 1.0}};
  }
  size_t keep = ids.size();
  if (opt.top_k > 0 && static_cast<size_t>(opt.top_k) < keep) {
    keep = static_cast<size_t>(opt.top_k);
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end(), before);
    ids.resize(keep);
  } else {
    std::sort(ids.begin(), ids.end(), before);
  }
  const double mx = logits[ids[0]];
  std::vector<std::pair<int32_t, double>> dist;
  dist.reserve(keep);
  double total = 0;
  for (int32_t id : ids) {
    const double p = std::exp((logits[id] - mx) / opt.temperature);
    dist.emplace_back(id, p);
    total += p;
  }
  for (auto& d : dist) d.second /= total;
  if (opt.top_p < 1) {
    double cum = 0;
    size_t m = 0;
    while (m < dist.size()) {
      cum += dist[m++].second;
      if (cum >= opt.top_p) break;
    }
    dist.resize(m);
    for (auto& d : dist) d.second /= cum;
  }
  return dist;
}

int32_t sample_token(const double* logits, int64_t n, const SamplingOptions& opt, Rng& rng) {
  std::vector<std::pair<int32_t, double>> dist = sampling_distribution(logits, n, opt);
  if (opt.temperature == 0) return dist[0].first;
  const double u = rng.uniform();
  double cum = 0;
  for (const auto& d : dist) {
    cum += d.second;
    if (u < cum) return d.first;
  }
  return dist.back().first;  // u within rounding of 1
}

std::vector<int32_t> sample_rows(const Tensor& logits, const SamplingOptions& opt, std::vector<Rng>& rngs) {
  GTA_CHECK(logits.ndim() == 2, "sample_rows: expected logits [B, V], got {}", logits.str());
  const int64_t B = logits.size(0), V = logits.size(1);
  GTA_CHECK(static_cast<int64_t>(rngs.size()) == B, "sample_rows: {} rows but {} generators", B, rngs.size());
  const std::vector<double> host = logits.to_doubles();
  std::vector<int32_t> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) out[b] = sample_token(host.data() + b * V, V, opt, rngs[b]);
  return out;
}

}  // namespace gta::infer
