// The singular-value spectrum of a layer's cached values: how compressible they are (the reason
// GTA and MLA cache a latent instead of full value heads).
//
// X [N, w] stacks the value part of the KV cache of every analysed token, one row per token:
// the V heads side by side (MHA, GQA, MQA, GVA, GHA), GTA's latent value head(s), or MLA's
// compressed latent c (which keys are decoded from too). The main spectrum is of X itself, NOT
// centered: the cache is produced and read by linear maps without offsets (v = x Wv, c = x Wv;
// a compressed cache would be c' = v A), so the rank a linear compression can exploit is that of
// X, and a large mean is one direction of it. The spectrum of the centered X - 1 mean(X) is
// reported beside it, as a second measure: how the values spread around that mean.
//
// Singular values s_1 >= ... >= s_w >= 0 (of X, or of the centered X) are reported divided by
// s_1, with
//   energy_k = (s_1^2 + ... + s_k^2) / (s_1^2 + ... + s_w^2)
//   n90 = smallest k with energy_k >= 0.90, n99 likewise with 0.99
//   rank = number of s_i > 1e-6 s_1.
// Memory stays O(w^2) whatever N: rows are folded into the Gram matrix G = X^T X (f64, BLAS
// dsyrk) and the column sums c; s_i = sqrt(lambda_i(G)), and for the centered X
// sqrt(lambda_i(G - c c^T / N)) (LAPACK dsyevd). Squaring costs precision only for values below
// about 1e-7 of the uncentered s_1, which are rounding noise either way.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace gta::analysis {

struct Spectrum {
  std::vector<double> normalized;  // s_i / s_1, descending (all 0 when X is 0)
  double s_max = 0;                // s_1
  int64_t n90 = 0, n99 = 0, rank = 0;
};

class ValueSpectrum {
 public:
  explicit ValueSpectrum(int64_t width);
  // Appends rows [N, w] (any float dtype, any device) to X.
  void add(const Tensor& rows);
  Spectrum spectrum() const;           // of X
  Spectrum centered_spectrum() const;  // of X - 1 mean(X)
  int64_t width() const { return w_; }
  int64_t rows() const { return rows_; }

 private:
  int64_t w_, rows_ = 0;
  std::vector<double> gram_;  // X^T X, row-major upper triangle filled
  std::vector<double> sums_;  // column sums of X
};

}  // namespace gta::analysis
