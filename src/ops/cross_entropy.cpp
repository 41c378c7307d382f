// Fused log-softmax + negative log-likelihood, averaged over the counted targets:
//   loss = (1/N) sum_r [ lse(x_r) - x_r[t_r] ],  lse(x) = m + log sum_j exp(x_j - m)
// Backward: dx_r = g/N * (softmax(x_r) - onehot(t_r)); rows whose target is ignore_index get 0.
// The row statistics are accumulated in double so f32 logits still give an accurate loss.
#include <cmath>

#include "autograd/node.h"
#include "ops/dispatch.h"
#include "ops/ops.h"

namespace gta::ops {

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  require_cpu("cross_entropy", logits);
  require_cpu("cross_entropy", targets);
  GTA_CHECK(logits.ndim() == 2, "cross_entropy: logits must be [N, vocab], got {}", logits.str());
  GTA_CHECK((targets.dtype() == DType::i32 || targets.dtype() == DType::i64) && targets.numel() == logits.size(0),
            "cross_entropy: targets {} for logits {}", targets.str(), logits.str());
  const int64_t N = logits.size(0), V = logits.size(1);
  std::vector<int64_t> tgt(N);
  Tensor tc = targets.contiguous();
  int64_t count = 0;
  for (int64_t r = 0; r < N; ++r) {
    tgt[r] = targets.dtype() == DType::i32 ? tc.data<int32_t>()[r] : tc.data<int64_t>()[r];
    if (tgt[r] == ignore_index) continue;
    GTA_CHECK(tgt[r] >= 0 && tgt[r] < V, "cross_entropy: target {} out of range [0, {})", tgt[r], V);
    ++count;
  }
  Tensor xc = logits.contiguous().detach();
  auto lse = std::make_shared<std::vector<double>>(N);
  std::vector<double> row_loss(N, 0.0);
  dispatch_float("cross_entropy", logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = xc.data<T>();
#pragma omp parallel for schedule(static) if (N * V > 16384)
    for (int64_t r = 0; r < N; ++r) {
      const T* xr = px + r * V;
      double m = xr[0];
      for (int64_t j = 1; j < V; ++j) m = std::max(m, static_cast<double>(xr[j]));
      double s = 0;
      for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(xr[j]) - m);
      (*lse)[r] = m + std::log(s);
      if (tgt[r] != ignore_index) row_loss[r] = (*lse)[r] - static_cast<double>(xr[tgt[r]]);
    }
  });
  double total = 0;
  for (double l : row_loss) total += l;  // in row order: deterministic
  Tensor out = Tensor::from_doubles({count ? total / count : 0.0}, {1}, logits.dtype());
  autograd::record(out, "cross_entropy", {logits}, [xc, tgt, lse, count, ignore_index, N, V](const Tensor& g) {
    Tensor dx = Tensor::empty({N, V}, g.dtype());
    const double gs = count ? g.item() / count : 0.0;
    dispatch_float("cross_entropy_backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* px = xc.data<T>();
      T* pd = dx.data<T>();
#pragma omp parallel for schedule(static) if (N * V > 16384)
      for (int64_t r = 0; r < N; ++r) {
        T* dr = pd + r * V;
        if (tgt[r] == ignore_index) {
          std::fill_n(dr, V, T(0));
          continue;
        }
        const double L = (*lse)[r];
        for (int64_t j = 0; j < V; ++j) dr[j] = static_cast<T>(gs * std::exp(static_cast<double>(px[r * V + j]) - L));
        dr[tgt[r]] -= static_cast<T>(gs);
      }
    });
    return std::vector<Tensor>{dx};
  });
  return out;
}

}  // namespace gta::ops
