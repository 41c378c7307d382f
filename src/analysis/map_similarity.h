// How alike a layer's attention maps are: the paper's reason to let heads share one map.
//
// A layer has M distinct maps: the h query heads of MHA, GQA and MQA (heads that share a key
// head still have maps of their own), the n_q maps of GVA, GHA and GTA, the h heads of MLA.
// Map a of a window is the causal attention matrix the model uses (after RoPE):
//   P_a[t, u] = softmax_u(scale * q_a[t] . k_{a/(M/n_k)}[u]),  u <= t  (P_a[t, u] = 0 for u > t)
// For maps a, b and query position t, with p = P_a[t, :] and r = P_b[t, :]:
//   cos_ab(t) = (p . r) / (|p| |r|)                                  in [0, 1] (p, r >= 0)
//   js_ab(t)  = 1/2 sum_u p_u log2(p_u / m_u) + 1/2 sum_u r_u log2(r_u / m_u),  m = (p + r) / 2
//              (the Jensen-Shannon divergence in bits, in [0, 1]; 0 when p = r)
// Each is averaged over every window and every query position t = 0 .. T-1 (t = 0 included,
// where every map is the one-hot row [1]), giving two symmetric M x M matrices per layer:
// cosine (diagonal 1) and JS (diagonal 0). The per-layer scalars are the means of their M(M-1)
// off-diagonal entries.
// Computed in f64 on the CPU, a block of query rows at a time (memory O(M * block * T), never a
// whole set of maps); deterministic (rows are summed in order).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace gta::analysis {

class MapSimilarity {
 public:
  // Adds the maps of q [B, T, M, d] and k [B, S, n_k, d] (any float dtype, any device; query t
  // at position S - T + t) with their score scale: B * T more query rows.
  void add(const Tensor& q, const Tensor& k, double scale);

  int64_t maps() const { return maps_; }
  int64_t key_heads() const { return key_heads_; }
  int64_t rows() const { return rows_; }
  // The mean matrices, M x M row-major (empty before any add).
  std::vector<double> cosine() const { return mean(cos_sum_); }
  std::vector<double> js_bits() const { return mean(js_sum_); }
  // Mean off-diagonal entry of an M x M matrix; NaN when M = 1.
  static double off_diagonal_mean(const std::vector<double>& m, int64_t maps);

 private:
  std::vector<double> mean(const std::vector<double>& sum) const;
  int64_t maps_ = 0, key_heads_ = 0, rows_ = 0;
  std::vector<double> cos_sum_, js_sum_;  // sums over rows, M x M
};

}  // namespace gta::analysis
