// Shared plumbing for op implementations: dtype dispatch for the floating CPU kernels, device
// checks, and a deterministic blocked reduction.
#pragma once
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace gta::ops {

// Calls fn(float{}) or fn(double{}) for f32/f64 tensors; other dtypes are an error naming the op.
template <typename Fn>
auto dispatch_float(const char* op, DType t, Fn&& fn) {
  if (t == DType::f32) return fn(float{});
  if (t == DType::f64) return fn(double{});
  fail("{}: dtype {} is not supported on the CPU (use f32 or f64)", op, dtype_name(t));
}

// Ops whose only implementation so far is the CPU one call this on every input.
inline void require_cpu(const char* op, const Tensor& t) {
  GTA_CHECK(t.device().is_cpu(), "{}: no {} implementation for {}", op, t.device().str(), t.str());
}

inline void require_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  GTA_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch {} vs {}", op, a.str(), b.str());
}

// Rows are reduced in fixed blocks of this many, then the block partials are summed in order,
// so a sum over rows gives the same bits whatever the thread count.
constexpr int64_t kReduceBlock = 64;

// out[j] = sum over rows r of f(r, j) for j < width, deterministically. f must be pure.
template <typename T, typename F>
void reduce_rows(int64_t rows, int64_t width, T* out, F&& f) {
  const int64_t blocks = (rows + kReduceBlock - 1) / kReduceBlock;
  std::vector<T> partial(static_cast<size_t>(blocks * width), T(0));
#pragma omp parallel for schedule(static) if (rows * width > 32768)
  for (int64_t bl = 0; bl < blocks; ++bl) {
    T* p = partial.data() + bl * width;
    const int64_t r1 = std::min(rows, (bl + 1) * kReduceBlock);
    for (int64_t r = bl * kReduceBlock; r < r1; ++r)
      for (int64_t j = 0; j < width; ++j) p[j] += f(r, j);
  }
  for (int64_t j = 0; j < width; ++j) out[j] = T(0);
  for (int64_t bl = 0; bl < blocks; ++bl)
    for (int64_t j = 0; j < width; ++j) out[j] += partial[bl * width + j];
}

}  // namespace gta::ops
