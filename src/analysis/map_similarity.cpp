#include "analysis/map_similarity.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "ops/gemm.h"

namespace gta::analysis {

namespace {

constexpr int64_t kBlockRows = 64;  // query rows whose maps are held at once

// Cosine and JS (bits) of two probability rows of length n whose logs are lp, lr (used where
// the probability is > 0). ss_p, ss_r: their sums of squares.
void compare_rows(const double* p, const double* lp, double ss_p, const double* r, const double* lr, double ss_r,
                  int64_t n, double* cos, double* js) {
  double dot = 0, kl = 0;
  for (int64_t u = 0; u < n; ++u) {
    dot += p[u] * r[u];
    const double m = 0.5 * (p[u] + r[u]);
    if (m == 0) continue;
    const double lm = std::log(m);
    if (p[u] > 0) kl += p[u] * (lp[u] - lm);
    if (r[u] > 0) kl += r[u] * (lr[u] - lm);
  }
  *cos = dot / std::sqrt(ss_p * ss_r);
  *js = 0.5 * kl / std::log(2.0);
}

}  // namespace

void MapSimilarity::add(const Tensor& q_in, const Tensor& k_in, double scale) {
  GTA_CHECK(q_in.ndim() == 4 && k_in.ndim() == 4 && q_in.size(0) == k_in.size(0) && q_in.size(3) == k_in.size(3) &&
                k_in.size(1) >= q_in.size(1),
            "map similarity: expected q [B, T, maps, d] and k [B, S >= T, key heads, d], got {} and {}", q_in.str(),
            k_in.str());
  const int64_t B = q_in.size(0), T = q_in.size(1), M = q_in.size(2), d = q_in.size(3);
  const int64_t S = k_in.size(1), nk = k_in.size(2);
  GTA_CHECK(nk >= 1 && M % nk == 0, "map similarity: key heads ({}) must divide maps ({})", nk, M);
  if (maps_ == 0) {
    maps_ = M, key_heads_ = nk;
    cos_sum_.assign(static_cast<size_t>(M * M), 0.0);
    js_sum_.assign(static_cast<size_t>(M * M), 0.0);
  }
  GTA_CHECK(M == maps_ && nk == key_heads_, "map similarity: {} maps over {} key heads, earlier {} over {}", M, nk,
            maps_, key_heads_);
  Tensor qt = q_in.to(Device::cpu()).to(DType::f64).contiguous();
  Tensor kt = k_in.to(Device::cpu()).to(DType::f64).contiguous();
  const int64_t group = M / nk;
  std::vector<double> P, logP, sumsq, row_stats;
  for (int64_t b = 0; b < B; ++b) {
    const double* q = qt.data<double>() + b * T * M * d;
    const double* k = kt.data<double>() + b * S * nk * d;
    for (int64_t t0 = 0; t0 < T; t0 += kBlockRows) {
      const int64_t rows = std::min(kBlockRows, T - t0);
      const int64_t W = S - T + t0 + rows;  // keys visible to the block's last row
      P.resize(static_cast<size_t>(M * rows * W));
      logP.resize(P.size());
      sumsq.resize(static_cast<size_t>(M * rows));
      // Scores of map a: scale * Q_a[t0 : t0+rows] K_{a/group}[0 : W]^T  ->  P[a] [rows, W].
      for (int64_t a = 0; a < M; ++a)
        ops::cpu::gemm(false, true, rows, W, d, scale, q + t0 * M * d + a * d, M * d, k + (a / group) * d, nk * d, 0.0,
                       P.data() + a * rows * W, W);
      // Causal softmax of each row in place (zeros past the row's position), its logs, |row|^2.
#pragma omp parallel for collapse(2) schedule(static)
      for (int64_t a = 0; a < M; ++a)
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t n = S - T + t0 + r + 1;
          double* row = P.data() + (a * rows + r) * W;
          double* lrow = logP.data() + (a * rows + r) * W;
          const double mx = *std::max_element(row, row + n);
          double z = 0;
          for (int64_t u = 0; u < n; ++u) z += std::exp(row[u] - mx);
          const double lz = std::log(z);
          double ss = 0;
          for (int64_t u = 0; u < n; ++u) {
            lrow[u] = row[u] - mx - lz;
            row[u] = std::exp(lrow[u]);
            ss += row[u] * row[u];
          }
          std::fill(row + n, row + W, 0.0);
          std::fill(lrow + n, lrow + W, -std::numeric_limits<double>::infinity());
          sumsq[a * rows + r] = ss;
        }
      // Every pair a <= b of every row: cosine and JS, kept per row, summed in row order below.
      row_stats.assign(static_cast<size_t>(rows * M * M * 2), 0.0);
#pragma omp parallel for schedule(dynamic, 4)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t n = S - T + t0 + r + 1;
        double* st = row_stats.data() + r * M * M * 2;
        for (int64_t a = 0; a < M; ++a)
          for (int64_t c = a; c < M; ++c) {
            const int64_t ia = (a * rows + r), ic = (c * rows + r);
            double cs = 0, js = 0;
            compare_rows(P.data() + ia * W, logP.data() + ia * W, sumsq[ia], P.data() + ic * W, logP.data() + ic * W,
                         sumsq[ic], n, &cs, &js);
            st[a * M + c] = st[c * M + a] = cs;
            st[M * M + a * M + c] = st[M * M + c * M + a] = js;
          }
      }
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < M * M; ++i) {
          cos_sum_[i] += row_stats[(r * M * M * 2) + i];
          js_sum_[i] += row_stats[(r * M * M * 2) + M * M + i];
        }
    }
  }
  rows_ += B * T;
}

std::vector<double> MapSimilarity::mean(const std::vector<double>& sum) const {
  std::vector<double> m(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) m[i] = sum[i] / static_cast<double>(rows_);
  return m;
}

double MapSimilarity::off_diagonal_mean(const std::vector<double>& m, int64_t maps) {
  if (maps < 2) return std::numeric_limits<double>::quiet_NaN();
  double s = 0;
  for (int64_t a = 0; a < maps; ++a)
    for (int64_t b = 0; b < maps; ++b)
      if (a != b) s += m[a * maps + b];
  return s / static_cast<double>(maps * (maps - 1));
}

}  // namespace gta::analysis
