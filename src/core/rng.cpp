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

static inline double bits_to_uniform(uint64_t x) { return static_cast<double>(x >> 11) * 0x1.0p-53; }

double Rng::uniform() { return bits_to_uniform(next_u64()); }

// Box-Muller on two uniform draws: N(0, 1) pair (r cos a, r sin a), r = sqrt(-2 ln u1), a = 2 pi u2.
static inline void box_muller(uint64_t x1, uint64_t x2, double* c, double* s) {
  double u1 = bits_to_uniform(x1);
  if (u1 < 1e-300) u1 = 1e-300;
  const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * bits_to_uniform(x2);
  *c = r * std::cos(a);
  *s = r * std::sin(a);
}

double Rng::normal() {
  if (has_cached_) {
    has_cached_ = false;
    cached_bits_ = 0;
    return cached_;
  }
  const uint64_t x1 = next_u64(), x2 = next_u64();
  double c;
  box_muller(x1, x2, &c, &cached_);
  has_cached_ = true;
  std::memcpy(&cached_bits_, &cached_, 8);
  if (cached_bits_ == 0) cached_bits_ = 1;  // keep "has a cached value" visible in state() (+0.0 -> denormal)
  return c;
}

void Rng::fill_normal(double* out, size_t n, double scale) {
  size_t i = 0;
  if (n > 0 && has_cached_) out[i++] = scale * normal();
  // The generator is sequential, the transforms are not: draw the raw bits of every whole pair
  // into the output slots the pair will fill (two 64-bit draws for two doubles), then transform
  // the pairs in place in parallel. An odd last element takes a whole pair through normal(),
  // which caches its second half as n calls would.
  // (memcpy moves the bits in and out of the double slots without breaking aliasing rules).
  const size_t pairs = (n - i) / 2;
  double* slot = out + i;
  for (size_t k = 0; k < 2 * pairs; ++k) {
    const uint64_t x = next_u64();
    std::memcpy(slot + k, &x, 8);
  }
#pragma omp parallel for schedule(static) if (pairs > 16384)
  for (size_t p = 0; p < pairs; ++p) {
    uint64_t x[2];
    std::memcpy(x, slot + 2 * p, 16);
    double c, s;
    box_muller(x[0], x[1], &c, &s);
    slot[2 * p] = scale * c;
    slot[2 * p + 1] = scale * s;
  }
  if (i + 2 * pairs < n) out[n - 1] = scale * normal();
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
