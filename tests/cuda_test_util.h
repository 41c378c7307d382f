// Shared by the GPU test files: skip without a GPU, the device, a fresh seed per run
// (GTA_TEST_SEED=N repeats a run), and the CPU-vs-GPU comparison helpers (normwise error, inputs
// rounded through the GPU dtype).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"

#define SKIP_WITHOUT_CUDA() \
  if (!gta::cuda_available()) GTEST_SKIP() << "no CUDA device (or a CPU-only build)"

namespace gta_test {

inline const gta::Device kGpu = gta::Device::cuda(0);

inline uint64_t fresh_seed() {
  if (const char* s = std::getenv("GTA_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  static std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

// ||got - want||_2 / ||want||_2 (the absolute norm when want is 0); NaN or inf never passes.
inline double normwise(const std::vector<double>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) || std::isinf(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// x rounded through dtype t, back in f64 on the CPU: the numbers both sides start from.
inline gta::Tensor rounded(const gta::Tensor& x, gta::DType t) { return x.detach().to(t).to(gta::DType::f64); }

}  // namespace gta_test
