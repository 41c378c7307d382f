// Deterministic random numbers for initialisation, sampling and data order: splitmix64 seeding
// a xoshiro256** generator, uniform doubles from the top 53 bits, normals by Box-Muller.
// Identical sequences on every platform and compiler (unlike std:: distributions).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace gta {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  uint64_t next_u64();
  double uniform();             // [0, 1)
  double normal();              // N(0, 1)
  // out[i] = scale * normal() for i < n: the same numbers and the same final state as n calls,
  // with the Box-Muller transforms (the costly part) spread over OpenMP threads.
  void fill_normal(double* out, size_t n, double scale);
  uint64_t below(uint64_t n);   // uniform integer in [0, n)
  // Complete state, for checkpoints.
  std::array<uint64_t, 5> state() const { return {s_[0], s_[1], s_[2], s_[3], cached_bits_}; }
  void set_state(const std::array<uint64_t, 5>& st);

 private:
  uint64_t s_[4];
  bool has_cached_ = false;
  double cached_ = 0;
  uint64_t cached_bits_ = 0;  // has_cached_ and cached_ packed for state(): bit pattern of cached_ or 0
};

// Steele, Lea and Flood's SplitMix64: advances x by the golden-ratio increment and returns it
// mixed (two xor-shift-multiply rounds); every seed gives a well-spread, independent stream.
inline uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace gta
