#include "core/rng.h"

#include <cmath>
#include <cstring>

namespace gta {

void Rng::reseed(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
  has_cached_ = false;
  cached_bits_ = 0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Rng::normal() {
  if (has_cached_) {
    has_cached_ = false;
    cached_bits_ = 0;
    return cached_;
  }
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
  cached_ = r * std::sin(a);
  has_cached_ = true;
  std::memcpy(&cached_bits_, &cached_, 8);
  if (cached_bits_ == 0) cached_bits_ = 1;  // keep "has a cached value" visible in state() (+0.0 -> denormal)
  return r * std::cos(a);
}

uint64_t Rng::below(uint64_t n) {
  // Rejection sampling: no modulo bias.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % n;
}

void Rng::set_state(const std::array<uint64_t, 5>& st) {
  for (int i = 0; i < 4; ++i) s_[i] = st[i];
  cached_bits_ = st[4];
  has_cached_ = st[4] != 0;
  if (has_cached_) std::memcpy(&cached_, &cached_bits_, 8);
}

}  // namespace gta
