// The deterministic generator: fill_normal (parallel Box-Muller) gives the numbers and the final
// state of the same count of normal() calls, bit for bit, whatever the parity and threads.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/rng.h"

using gta::Rng;

namespace {

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

TEST(Rng, FillNormalEqualsRepeatedNormal) {
  // 70001: odd and past the size where the transforms go parallel.
  for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{7}, size_t{70001}, size_t{70002}}) {
    for (bool start_with_cached_half : {false, true}) {
      Rng a(123), b(123);
      if (start_with_cached_half) a.normal(), b.normal();  // leaves the pair's second half cached
      std::vector<double> want(n), got(n);
      for (double& x : want) x = 0.02 * a.normal();
      b.fill_normal(got.data(), n, 0.02);
      for (size_t i = 0; i < n; ++i)
        ASSERT_TRUE(same_bits(want[i], got[i])) << "n " << n << " cached " << start_with_cached_half << " i " << i;
      EXPECT_EQ(a.state(), b.state()) << "n " << n << " cached " << start_with_cached_half;
      EXPECT_TRUE(same_bits(a.normal(), b.normal()));
      EXPECT_EQ(a.next_u64(), b.next_u64());
    }
  }
}

TEST(Rng, NormalMoments) {
  // A loose check that the pairs are N(0, 1) and independent of their order in the buffer.
  Rng r(7);
  std::vector<double> v(200000);
  r.fill_normal(v.data(), v.size(), 1.0);
  double m = 0, m2 = 0, lag = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    m += v[i], m2 += v[i] * v[i];
    if (i) lag += v[i] * v[i - 1];
  }
  m /= double(v.size()), m2 /= double(v.size()), lag /= double(v.size() - 1);
  EXPECT_NEAR(m, 0.0, 0.01);
  EXPECT_NEAR(m2, 1.0, 0.01);
  EXPECT_NEAR(lag, 0.0, 0.01);
}
