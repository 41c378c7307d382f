// Shared by the GPU test files: skip without a GPU, the device, and a fresh seed per run
// (GTA_TEST_SEED=N repeats a run).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <random>

#include "core/device.h"

#define SKIP_WITHOUT_CUDA() \
  if (!gta::cuda_available()) GTEST_SKIP() << "no CUDA device (or a CPU-only build)"

namespace gta_test {

inline const gta::Device kGpu = gta::Device::cuda(0);

inline uint64_t fresh_seed() {
  if (const char* s = std::getenv("GTA_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  static std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace gta_test
