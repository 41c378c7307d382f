// Deterministic randomness for the data pipeline. The standard library's distributions differ
// between implementations, so shuffles here use splitmix64 and an explicit Fisher-Yates walk:
// the same seed gives the same order on every machine and compiler.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "core/rng.h"  // splitmix64

namespace gta::data {

// Mix two 64-bit values into one seed (e.g. (seed, epoch) -> stream seed).
inline uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t s = a ^ (b * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
  splitmix64(s);
  return splitmix64(s);
}

// Uniform integer in [0, n) without modulo bias (Lemire's multiply-shift with rejection).
inline uint64_t uniform_below(uint64_t& state, uint64_t n) {
  if (n <= 1) return 0;
  for (;;) {
    uint64_t x = splitmix64(state);
    __uint128_t m = __uint128_t(x) * n;
    uint64_t lo = uint64_t(m);
    if (lo >= n || lo >= (-n) % n) return uint64_t(m >> 64);
  }
}

// In-place Fisher-Yates shuffle driven by splitmix64(seed).
template <typename T>
void shuffle(std::vector<T>& v, uint64_t seed) {
  uint64_t state = seed;
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = size_t(uniform_below(state, i));
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace gta::data
