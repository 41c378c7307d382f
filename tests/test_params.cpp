// Parameter initialisation: Params::add draws a parameter's normal weights a chunk at a time; the
// weights must be the ones a single draw of the whole parameter gives (so the same seed makes the
// same model whatever the chunking), across a chunk boundary and after an odd-sized parameter
// (which leaves half of a Box-Muller pair cached), in f32 and bf16.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "nn/params.h"

using gta::DType;
using gta::Rng;
using gta::Shape;
using gta::Tensor;

TEST(Params, NormalInitEqualsOneDrawPerParameter) {
  // 1025 x 1024 is past one chunk (2^20 values) and not a multiple of it.
  const std::vector<Shape> shapes = {{7}, {1025, 1024}, {3, 5}};
  for (DType dt : {DType::f32, DType::bf16}) {
    Rng init_rng(99), ref_rng(99);
    gta::nn::Params params(dt, &init_rng);
    for (size_t i = 0; i < shapes.size(); ++i) {
      std::string name = "p";
      name += std::to_string(i);  // not "p" + to_string: GCC 12's -Wrestrict misfires on it
      const Tensor got = params.add(name, shapes[i], gta::nn::Init::normal, 0.02);
      std::vector<double> v(static_cast<size_t>(gta::shape_numel(shapes[i])));
      ref_rng.fill_normal(v.data(), v.size(), 0.02);
      const Tensor want = Tensor::from_doubles(v, shapes[i], dt);
      ASSERT_EQ(got.nbytes(), want.nbytes());
      EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), got.nbytes()), 0)
          << "parameter " << i << " in " << (dt == DType::f32 ? "f32" : "bf16");
    }
    EXPECT_EQ(init_rng.state(), ref_rng.state());
  }
}
