#include "analysis/value_spectrum.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

// LAPACK's symmetric eigensolver (divide and conquer), from OpenBLAS, through the Fortran ABI
// (Debian's OpenBLAS ships LAPACK but not the LAPACKE C header). The trailing size_t arguments
// are the lengths of the two character arguments that gfortran passes by value.
extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                        double* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t jobz_len,
                        size_t uplo_len);

namespace gta::analysis {

namespace {

// Eigenvalues (ascending) of the symmetric n x n matrix whose row-major upper triangle is in a
// (destroyed). Row-major upper is column-major lower, hence uplo "L".
std::vector<double> symmetric_eigenvalues(std::vector<double> a, int n) {
  std::vector<double> w(static_cast<size_t>(n));
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_("N", "L", &n, a.data(), &n, w.data(), &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1);
  GTA_CHECK(info == 0, "LAPACK dsyevd workspace query failed (info {})", info);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
  std::vector<int> iwork(static_cast<size_t>(std::max(liwork, 1)));
  dsyevd_("N", "L", &n, a.data(), &n, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1);
  GTA_CHECK(info == 0, "LAPACK dsyevd did not converge on a {}x{} Gram matrix (info {})", n, n, info);
  return w;
}

// Smallest k with (e_1 + ... + e_k) >= fraction * total; e descending, nonnegative.
int64_t components_for(const std::vector<double>& e, double total, double fraction) {
  double run = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    run += e[i];
    if (run >= fraction * total) return static_cast<int64_t>(i + 1);
  }
  return static_cast<int64_t>(e.size());
}

// The spectrum of a matrix from its Gram matrix (row-major upper triangle).
Spectrum spectrum_of_gram(const std::vector<double>& gram, int64_t w) {
  std::vector<double> lambda = symmetric_eigenvalues(gram, static_cast<int>(w));
  std::reverse(lambda.begin(), lambda.end());  // descending
  Spectrum s;
  // Rounding can leave the eigenvalues of a singular G slightly negative: they are 0.
  std::vector<double> energy(lambda.size());
  double total = 0;
  for (size_t i = 0; i < lambda.size(); ++i) total += energy[i] = std::max(lambda[i], 0.0);
  s.s_max = std::sqrt(energy[0]);
  s.normalized.resize(energy.size(), 0.0);
  for (size_t i = 0; i < energy.size(); ++i) {
    if (s.s_max > 0) s.normalized[i] = std::sqrt(energy[i]) / s.s_max;
    if (s.normalized[i] > 1e-6) ++s.rank;
  }
  if (total > 0) {
    s.n90 = components_for(energy, total, 0.90);
    s.n99 = components_for(energy, total, 0.99);
  }
  return s;
}

}  // namespace

ValueSpectrum::ValueSpectrum(int64_t width)
    : w_(width), gram_(static_cast<size_t>(width * width), 0.0), sums_(static_cast<size_t>(width), 0.0) {
  GTA_CHECK(width >= 1, "value spectrum: width must be >= 1, got {}", width);
}

void ValueSpectrum::add(const Tensor& rows) {
  GTA_CHECK(rows.ndim() == 2 && rows.size(1) == w_, "value spectrum: expected rows [N, {}], got {}", w_, rows.str());
  Tensor x = rows.to(Device::cpu()).to(DType::f64).contiguous();
  const int64_t n = x.size(0);
  if (n == 0) return;
  const double* p = x.data<double>();
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(w_), static_cast<int>(n), 1.0, p,
              static_cast<int>(w_), 1.0, gram_.data(), static_cast<int>(w_));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w_; ++j) sums_[j] += p[i * w_ + j];
  rows_ += n;
}

Spectrum ValueSpectrum::spectrum() const { return spectrum_of_gram(gram_, w_); }

Spectrum ValueSpectrum::centered_spectrum() const {
  // (X - 1 m)^T (X - 1 m) = X^T X - c c^T / N with m = c / N; the upper triangle is enough.
  std::vector<double> g = gram_;
  if (rows_ > 0)
    for (int64_t i = 0; i < w_; ++i)
      for (int64_t j = i; j < w_; ++j) g[i * w_ + j] -= sums_[i] * sums_[j] / static_cast<double>(rows_);
  return spectrum_of_gram(g, w_);
}

}  // namespace gta::analysis
