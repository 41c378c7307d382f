// Tensor: creation, views that share storage (reshape, permute, transpose, slice, expand),
// contiguous copies, dtype conversions (bf16 round-to-nearest-even, integer round trips), error
// cases, and the CUDA round trip where a GPU is present.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "gradcheck.h"
#include "test_util.h"

namespace {

using gta::bf16;
using gta::Device;
using gta::DType;
using gta::Shape;
using gta::Tensor;
using V = std::vector<double>;

// 0, 1, 2, ... in f64.
Tensor arange(const Shape& s, DType dtype = DType::f64) {
  V v(gta::shape_numel(s));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return Tensor::from_doubles(v, s, dtype);
}

// ---- creation ----------------------------------------------------------------------------------------

TEST(Tensor, Creation) {
  for (DType t : {DType::f32, DType::bf16, DType::f64, DType::i32, DType::i64, DType::u16}) {
    SCOPED_TRACE(gta::dtype_name(t));
    Tensor z = Tensor::zeros({2, 3, 5}, t);
    EXPECT_EQ(z.shape(), (Shape{2, 3, 5}));
    EXPECT_EQ(z.strides(), (Shape{15, 5, 1}));
    EXPECT_EQ(z.dtype(), t);
    EXPECT_EQ(z.numel(), 30);
    EXPECT_EQ(z.ndim(), 3);
    EXPECT_EQ(z.nbytes(), 30 * gta::dtype_size(t));
    EXPECT_TRUE(z.device().is_cpu());
    EXPECT_TRUE(z.is_contiguous());
    EXPECT_FALSE(z.requires_grad());
    EXPECT_EQ(z.to_doubles(), V(30, 0.0));
    EXPECT_EQ(Tensor::ones({7}, t).to_doubles(), V(7, 1.0));
    EXPECT_EQ(Tensor::full({3, 1}, 3.0, t).to_doubles(), V(3, 3.0));
  }
  EXPECT_EQ(Tensor::full({2}, -2.5, DType::f32).to_doubles(), V(2, -2.5));
  EXPECT_EQ(Tensor::full({2}, 0.1, DType::f64).to_doubles(), V(2, 0.1));
  EXPECT_EQ(Tensor::full({2}, 0.1, DType::f32).to_doubles(), V(2, static_cast<double>(0.1f)));
  Tensor scalar = Tensor::full({}, 4.0, DType::f64);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(scalar.item(), 4.0);
  EXPECT_EQ(Tensor::zeros({3, 0}).numel(), 0);
  EXPECT_THROW(Tensor::empty({2, -1}), gta::Error);
}

TEST(Tensor, FromVectorAndDoubles) {
  Tensor f = Tensor::from_vector(std::vector<float>{1.5f, -2.f, 3.25f, 0.f, 9.f, -0.5f}, {2, 3});
  EXPECT_EQ(f.dtype(), DType::f32);
  EXPECT_EQ(f.to_doubles(), (V{1.5, -2, 3.25, 0, 9, -0.5}));
  EXPECT_EQ(f.data<float>()[2], 3.25f);
  Tensor i = Tensor::from_vector(std::vector<int32_t>{4, -5, 6}, {3});
  EXPECT_EQ(i.dtype(), DType::i32);
  EXPECT_EQ(i.to_doubles(), (V{4, -5, 6}));
  Tensor d = Tensor::from_doubles({0.1, 0.2, 0.3, 0.4}, {2, 2}, DType::f64);
  EXPECT_EQ(d.dtype(), DType::f64);
  EXPECT_EQ(d.to_doubles(), (V{0.1, 0.2, 0.3, 0.4}));
  Tensor d32 = Tensor::from_doubles({0.1, 0.2}, {2});  // f32 by default
  EXPECT_EQ(d32.dtype(), DType::f32);
  EXPECT_EQ(d32.data<float>()[0], 0.1f);
  EXPECT_THROW(Tensor::from_doubles({1, 2, 3}, {2, 2}), gta::Error);
  // A typed accessor of the wrong type is an error.
  EXPECT_THROW(d.data<float>(), gta::Error);
  EXPECT_THROW(i.data<int64_t>(), gta::Error);
}

// ---- views --------------------------------------------------------------------------------------------

TEST(Tensor, ReshapeOfContiguousIsAView) {
  Tensor x = arange({3, 4});
  Tensor y = x.reshape({2, 6});
  EXPECT_EQ(y.shape(), (Shape{2, 6}));
  EXPECT_EQ(y.storage(), x.storage());
  y.data<double>()[5] = 42.0;
  EXPECT_EQ(x.to_doubles()[5], 42.0);
  x.data<double>()[11] = -7.0;
  EXPECT_EQ(y.to_doubles()[11], -7.0);
  // -1 is inferred.
  EXPECT_EQ(x.reshape({-1}).shape(), (Shape{12}));
  EXPECT_EQ(x.reshape({2, -1, 3}).shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(x.reshape({-1, 1}).shape(), (Shape{12, 1}));
  // A contiguous slice keeps its offset through reshape.
  Tensor s = x.slice(0, 1, 3).reshape({8});
  EXPECT_EQ(s.storage(), x.storage());
  EXPECT_EQ(s.to_doubles(), (V{4, 42, 6, 7, 8, 9, 10, -7}));
}

TEST(Tensor, ReshapeErrors) {
  Tensor x = arange({3, 4});
  EXPECT_THROW(x.reshape({5, -1}), gta::Error);
  EXPECT_THROW(x.reshape({5, 3}), gta::Error);
  EXPECT_THROW(x.reshape({-1, -1}), gta::Error);
  EXPECT_THROW(x.reshape({0, -1}), gta::Error);
  EXPECT_THROW(x.reshape({13}), gta::Error);
}

TEST(Tensor, ReshapeOfNonContiguousCopies) {
  Tensor x = arange({2, 3});
  Tensor y = x.transpose(0, 1).reshape({6});
  EXPECT_EQ(y.to_doubles(), (V{0, 3, 1, 4, 2, 5}));
  EXPECT_NE(y.storage(), x.storage());
}

TEST(Tensor, PermuteIsAView) {
  Tensor x = arange({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));
  EXPECT_EQ(p.storage(), x.storage());
  EXPECT_FALSE(p.is_contiguous());
  V pv = p.to_doubles();
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 2; ++b)
      for (int c = 0; c < 3; ++c) EXPECT_EQ(pv[(a * 2 + b) * 3 + c], (b * 3 + c) * 4 + a);
  x.data<double>()[1 * 12 + 2 * 4 + 3] = 100.0;  // x[1, 2, 3] = p[3, 1, 2]
  EXPECT_EQ(p.to_doubles()[(3 * 2 + 1) * 3 + 2], 100.0);
  // Negative dims and errors.
  EXPECT_EQ(x.permute({-1, -3, -2}).shape(), (Shape{4, 2, 3}));
  EXPECT_THROW(x.permute({0, 1}), gta::Error);
  EXPECT_THROW(x.permute({0, 0, 1}), gta::Error);
  EXPECT_THROW(x.permute({0, 1, 3}), gta::Error);
}

TEST(Tensor, Transpose) {
  Tensor x = arange({2, 3});
  Tensor t = x.transpose(0, 1);
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_EQ(t.strides(), (Shape{1, 3}));
  EXPECT_EQ(t.storage(), x.storage());
  EXPECT_EQ(t.to_doubles(), (V{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(x.transpose(-1, -2).to_doubles(), t.to_doubles());
  // Transposing back is the original layout.
  EXPECT_TRUE(t.transpose(0, 1).is_contiguous());
  EXPECT_EQ(t.transpose(0, 1).to_doubles(), x.to_doubles());
}

TEST(Tensor, SliceIsAView) {
  Tensor x = arange({5, 7});
  Tensor rows = x.slice(0, 1, 4);
  EXPECT_EQ(rows.shape(), (Shape{3, 7}));
  EXPECT_EQ(rows.offset(), 7);
  EXPECT_EQ(rows.storage(), x.storage());
  EXPECT_TRUE(rows.is_contiguous());
  EXPECT_EQ(rows.to_doubles()[0], 7.0);
  Tensor cols = x.slice(1, 2, 5);
  EXPECT_EQ(cols.shape(), (Shape{5, 3}));
  EXPECT_EQ(cols.offset(), 2);
  EXPECT_EQ(cols.strides(), (Shape{7, 1}));
  EXPECT_FALSE(cols.is_contiguous());
  EXPECT_EQ(cols.to_doubles(), (V{2, 3, 4, 9, 10, 11, 16, 17, 18, 23, 24, 25, 30, 31, 32}));
  // Writes through the view land in the base, and the other way round.
  cols.data<double>()[7 + 1] = -1.0;  // cols[1, 1] = x[1, 3]
  EXPECT_EQ(x.to_doubles()[7 + 3], -1.0);
  x.data<double>()[4 * 7 + 4] = 99.0;  // x[4, 4] = cols[4, 2]
  EXPECT_EQ(cols.to_doubles()[14], 99.0);
  // Slice of a slice, negative dim, empty slice.
  Tensor ss = x.slice(0, 1, 4).slice(-1, 5, 7);
  EXPECT_EQ(ss.shape(), (Shape{3, 2}));
  EXPECT_EQ(ss.offset(), 12);
  EXPECT_EQ(ss.to_doubles(), (V{12, 13, 19, 20, 26, 27}));
  EXPECT_EQ(x.slice(1, 3, 3).numel(), 0);
}

TEST(Tensor, SliceErrors) {
  Tensor x = arange({5, 7});
  EXPECT_THROW(x.slice(0, 0, 6), gta::Error);
  EXPECT_THROW(x.slice(1, 4, 3), gta::Error);
  EXPECT_THROW(x.slice(1, -1, 3), gta::Error);
  EXPECT_THROW(x.slice(2, 0, 1), gta::Error);
  EXPECT_THROW(x.slice(-3, 0, 1), gta::Error);
}

TEST(Tensor, ExpandHasStrideZero) {
  Tensor x = arange({3, 1});
  Tensor e = x.expand({2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_EQ(e.storage(), x.storage());
  EXPECT_FALSE(e.is_contiguous());
  V ev = e.to_doubles();
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c) EXPECT_EQ(ev[(a * 3 + b) * 4 + c], b);
  x.data<double>()[2] = 8.0;
  EXPECT_EQ(e.to_doubles()[23], 8.0);
  // Same sizes keep their strides.
  EXPECT_EQ(arange({2, 3}).expand({4, 2, 3}).strides(), (Shape{0, 3, 1}));
  EXPECT_EQ(x.expand({3, 2}).to_doubles(), (V{0, 0, 1, 1, 8, 8}));
}

TEST(Tensor, ExpandErrors) {
  Tensor x = arange({3, 2});
  EXPECT_THROW(x.expand({3, 4}), gta::Error);   // 2 is not 1
  EXPECT_THROW(x.expand({2}), gta::Error);      // fewer dims
  EXPECT_THROW(x.expand({4, 2}), gta::Error);   // 3 is not 1
}

TEST(Tensor, ContiguousOfPermutedCopiesInOrder) {
  Tensor x = arange({2, 3, 4});
  Tensor p = x.permute({1, 2, 0});
  Tensor c = p.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_NE(c.storage(), x.storage());
  EXPECT_EQ(c.strides(), (Shape{8, 2, 1}));
  const double* d = c.data<double>();
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 4; ++b)
      for (int k = 0; k < 2; ++k) EXPECT_EQ(d[(a * 4 + b) * 2 + k], (k * 3 + a) * 4 + b);
  // Already contiguous: the same tensor.
  EXPECT_EQ(x.contiguous().impl(), x.impl());
  // Expanded and sliced views too.
  Tensor e = arange({3}).expand({2, 3}).contiguous();
  EXPECT_EQ(std::vector<double>(e.data<double>(), e.data<double>() + 6), (V{0, 1, 2, 0, 1, 2}));
  Tensor s = arange({4, 5}).slice(1, 1, 3).contiguous();
  EXPECT_EQ(std::vector<double>(s.data<double>(), s.data<double>() + 8), (V{1, 2, 6, 7, 11, 12, 16, 17}));
}

TEST(Tensor, IsContiguous) {
  EXPECT_TRUE(arange({2, 3, 4}).is_contiguous());
  EXPECT_FALSE(arange({2, 3}).transpose(0, 1).is_contiguous());
  EXPECT_TRUE(arange({5, 3}).slice(0, 1, 3).is_contiguous());
  EXPECT_FALSE(arange({5, 3}).slice(1, 0, 2).is_contiguous());
  EXPECT_TRUE(arange({5, 3}).slice(1, 0, 3).is_contiguous());
  // Size-1 dims do not matter, whatever their stride.
  EXPECT_TRUE(arange({3, 1, 4}).permute({1, 0, 2}).is_contiguous());
  EXPECT_TRUE(arange({4, 1}).transpose(0, 1).is_contiguous());
  EXPECT_FALSE(arange({1, 3}).expand({2, 3}).is_contiguous());
  // A hand-made view with a gap between rows.
  Tensor base = arange({12});
  EXPECT_FALSE(gta::make_view(base, {2, 3}, {6, 1}, 0).is_contiguous());
  EXPECT_EQ(gta::make_view(base, {2, 3}, {6, 1}, 1).to_doubles(), (V{1, 2, 3, 7, 8, 9}));
}

TEST(Tensor, CloneAndDetach) {
  Tensor x = arange({2, 3});
  Tensor c = x.clone();
  EXPECT_NE(c.storage(), x.storage());
  EXPECT_EQ(c.to_doubles(), x.to_doubles());
  c.data<double>()[0] = 5.0;
  EXPECT_EQ(x.to_doubles()[0], 0.0);
  Tensor ct = x.transpose(0, 1).clone();
  EXPECT_TRUE(ct.is_contiguous());
  EXPECT_EQ(ct.to_doubles(), (V{0, 3, 1, 4, 2, 5}));
  x.set_requires_grad(true);
  Tensor d = x.detach();
  EXPECT_EQ(d.storage(), x.storage());
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  d.data<double>()[1] = 9.0;
  EXPECT_EQ(x.to_doubles()[1], 9.0);
}

TEST(Tensor, ToDoublesAndItemFollowLogicalOrder) {
  Tensor x = arange({3, 4, 5});
  Tensor v = x.permute({2, 0, 1}).slice(0, 1, 3).slice(2, 1, 3);  // [2, 3, 2]
  EXPECT_EQ(v.shape(), (Shape{2, 3, 2}));
  V got = v.to_doubles(), want;
  for (int a = 1; a < 3; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 1; c < 3; ++c) want.push_back((b * 4 + c) * 5 + a);
  EXPECT_EQ(got, want);
  EXPECT_EQ(x.slice(0, 2, 3).slice(1, 3, 4).slice(2, 4, 5).item(), 59.0);
  EXPECT_EQ(Tensor::from_vector(std::vector<int64_t>{-3}, {1}).item(), -3.0);
  EXPECT_THROW(x.item(), gta::Error);
  EXPECT_THROW(x.slice(0, 0, 0).item(), gta::Error);
}

TEST(Tensor, Metadata) {
  Tensor x = arange({2, 3, 4}, DType::f32);
  EXPECT_EQ(x.size(0), 2);
  EXPECT_EQ(x.size(-1), 4);
  EXPECT_EQ(x.size(-3), 2);
  EXPECT_THROW(x.size(3), gta::Error);
  EXPECT_THROW(x.size(-4), gta::Error);
  EXPECT_EQ(x.str(), "f32[2, 3, 4] cpu");
  EXPECT_EQ(gta::shape_str({}), "[]");
  EXPECT_EQ(gta::shape_numel({}), 1);
  EXPECT_EQ(gta::contiguous_strides({2, 3, 4}), (Shape{12, 4, 1}));
  EXPECT_FALSE(Tensor().defined());
  for (DType t : {DType::f32, DType::bf16, DType::f64, DType::i32, DType::i64, DType::u16})
    EXPECT_EQ(gta::dtype_from_name(gta::dtype_name(t)), t);
  EXPECT_THROW(gta::dtype_from_name("f16"), gta::Error);
  EXPECT_EQ(gta::dtype_size(DType::bf16), 2u);
  EXPECT_EQ(gta::dtype_size(DType::i64), 8u);
  EXPECT_TRUE(gta::is_floating(DType::bf16));
  EXPECT_FALSE(gta::is_floating(DType::u16));
  EXPECT_TRUE(gta::parse_device("cpu").is_cpu());
  EXPECT_EQ(gta::parse_device("cuda:1"), Device::cuda(1));
  EXPECT_EQ(gta::parse_device("cuda"), Device::cuda(0));
  EXPECT_THROW(gta::parse_device("tpu"), gta::Error);
  EXPECT_THROW(gta::parse_device("cuda:x"), gta::Error);
  // resolve_device: what a device setting means for this process, with or without a GPU.
  const int gpus = gta::cuda_device_count();
  EXPECT_EQ(gta::resolve_device("cpu", 1), Device::cpu());
  if (gpus == 0) {
    EXPECT_EQ(gta::resolve_device("auto", 1), Device::cpu());
    gta_test::expect_error([] { gta::resolve_device("cuda", 0, "train.device"); }, {"train.device cuda", "no usable GPU"});
  } else {
    EXPECT_EQ(gta::resolve_device("auto", 0), Device::cuda(0));
    EXPECT_EQ(gta::resolve_device("cuda", gpus - 1), Device::cuda(gpus - 1));  // the local rank's GPU
    gta_test::expect_error([&] { gta::resolve_device("cuda:" + std::to_string(gpus), 0, "--device"); },
                           {"--device", "does not exist"});
  }
  // Only floating tensors can require grad.
  Tensor ids = Tensor::zeros({3}, DType::i64);
  EXPECT_THROW(ids.set_requires_grad(true), gta::Error);
  EXPECT_NO_THROW(ids.set_requires_grad(false));
}

// ---- dtypes -------------------------------------------------------------------------------------------

double bf16_round(double v) { return Tensor::from_doubles({v}, {1}, DType::bf16).to_doubles()[0]; }

TEST(Tensor, Bf16RoundsToNearestEven) {
  const double u = std::ldexp(1.0, -7);  // bf16 spacing just above 1
  EXPECT_EQ(bf16_round(1.0), 1.0);
  EXPECT_EQ(bf16_round(1.0 + std::ldexp(1.0, -8)), 1.0);               // tie -> even (down)
  EXPECT_EQ(bf16_round(1.0 + 3 * std::ldexp(1.0, -9)), 1.0 + u);       // above the tie -> up
  EXPECT_EQ(bf16_round(1.0 + std::ldexp(1.0, -9)), 1.0);               // below the tie -> down
  EXPECT_EQ(bf16_round(1.0 + 3 * std::ldexp(1.0, -8)), 1.0 + 2 * u);   // tie -> even (up)
  EXPECT_EQ(bf16_round(1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -20)), 1.0 + u);  // just above a tie
  EXPECT_EQ(bf16_round(-(1.0 + 3 * std::ldexp(1.0, -9))), -(1.0 + u));
  EXPECT_EQ(bf16_round(3.140625), 3.140625);                            // representable: unchanged
  EXPECT_EQ(bf16_round(0.1), 0.10009765625);
  EXPECT_EQ(bf16_round(65536.0 * (1.0 + std::ldexp(1.0, -8))), 65536.0);
  EXPECT_EQ(bf16_round(std::ldexp(1.0, -130)), std::ldexp(1.0, -130));  // subnormal, representable
  EXPECT_EQ(bf16_round(INFINITY), INFINITY);
  EXPECT_EQ(bf16_round(-INFINITY), -INFINITY);
  EXPECT_TRUE(std::isnan(bf16_round(NAN)));
  EXPECT_EQ(bf16_round(std::numeric_limits<float>::max()), INFINITY);  // past the largest bf16
  // The struct itself.
  EXPECT_EQ(bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(bf16(-2.0f).bits, 0xc000);
  EXPECT_EQ(static_cast<float>(bf16(1.0f + 0x1.8p-8f)), 1.0f + 0x1p-7f);
  // f32 -> bf16 -> f32 through tensors; bf16 -> f32 is exact.
  Tensor f = Tensor::from_vector(std::vector<float>{1.0f + 0x1p-8f, 1.0f + 0x1.8p-8f, -0.0f, 256.5f}, {4});
  Tensor b = f.to(DType::bf16);
  EXPECT_EQ(b.dtype(), DType::bf16);
  EXPECT_EQ(b.nbytes(), 8u);
  EXPECT_EQ(b.to(DType::f32).to_doubles(), (V{1.0, 1.0 + u, 0.0, 256.0}));
  EXPECT_EQ(b.data<bf16>()[3].bits, bf16(256.0f).bits);
}

TEST(Tensor, IntegerRoundTrips) {
  const std::vector<int32_t> i32 = {std::numeric_limits<int32_t>::min(), -1, 0, 7, std::numeric_limits<int32_t>::max()};
  Tensor a = Tensor::from_vector(i32, {5});
  EXPECT_EQ(a.to_doubles(), (V{-2147483648.0, -1, 0, 7, 2147483647.0}));
  Tensor a64 = a.to(DType::i64);
  EXPECT_EQ(a64.dtype(), DType::i64);
  EXPECT_EQ(std::vector<int64_t>(a64.data<int64_t>(), a64.data<int64_t>() + 5),
            std::vector<int64_t>(i32.begin(), i32.end()));
  Tensor back = a64.to(DType::i32);
  EXPECT_EQ(std::vector<int32_t>(back.data<int32_t>(), back.data<int32_t>() + 5), i32);
  Tensor ad = a.to(DType::f64).to(DType::i32);  // exact through f64
  EXPECT_EQ(std::vector<int32_t>(ad.data<int32_t>(), ad.data<int32_t>() + 5), i32);

  const std::vector<int64_t> i64 = {(int64_t{1} << 53) + 1, -(int64_t{1} << 40), 0, 123456789012345};
  Tensor b = Tensor::from_vector(i64, {2, 2});
  Tensor bt = b.transpose(0, 1).contiguous().transpose(0, 1).contiguous();
  EXPECT_EQ(std::vector<int64_t>(bt.data<int64_t>(), bt.data<int64_t>() + 4), i64);
  EXPECT_EQ(b.to_doubles()[1], -1099511627776.0);

  const std::vector<uint16_t> u16 = {0, 1, 40000, 65535};
  Tensor c = Tensor::from_vector(u16, {4});
  EXPECT_EQ(c.dtype(), DType::u16);
  EXPECT_EQ(c.to_doubles(), (V{0, 1, 40000, 65535}));
  Tensor cr = c.to(DType::i32).to(DType::u16);
  EXPECT_EQ(std::vector<uint16_t>(cr.data<uint16_t>(), cr.data<uint16_t>() + 4), u16);
  Tensor cf = c.to(DType::f32).to(DType::u16);
  EXPECT_EQ(std::vector<uint16_t>(cf.data<uint16_t>(), cf.data<uint16_t>() + 4), u16);
  Tensor ci = c.to(DType::i64);
  EXPECT_EQ(ci.data<int64_t>()[3], 65535);

  // Integral floats to integers.
  Tensor g = Tensor::from_doubles({-3, 0, 5, 1000}, {4}, DType::f32).to(DType::i64);
  EXPECT_EQ(std::vector<int64_t>(g.data<int64_t>(), g.data<int64_t>() + 4), (std::vector<int64_t>{-3, 0, 5, 1000}));
  // Same dtype: the same tensor, no copy.
  EXPECT_EQ(a.to(DType::i32).impl(), a.impl());
  // Conversions read through views.
  Tensor p = arange({2, 3}, DType::i32).transpose(0, 1).to(DType::f32);
  EXPECT_EQ(p.to_doubles(), (V{0, 3, 1, 4, 2, 5}));
}

TEST(Tensor, FloatConversions) {
  Tensor x = Tensor::from_doubles({0.1, -1e-3, 12345.678, 1e30}, {4}, DType::f64);
  Tensor f = x.to(DType::f32);
  EXPECT_EQ(f.to_doubles(), (V{double(0.1f), double(-1e-3f), double(12345.678f), double(1e30f)}));
  EXPECT_EQ(f.to(DType::f64).to_doubles(), f.to_doubles());
  Tensor b = x.to(DType::bf16);
  EXPECT_EQ(b.to_doubles()[0], 0.10009765625);
  EXPECT_EQ(b.to(DType::f64).to_doubles(), b.to_doubles());
}

// ---- devices ------------------------------------------------------------------------------------------

TEST(Tensor, CpuToCpuIsIdentity) {
  Tensor x = arange({3});
  EXPECT_EQ(x.to(Device::cpu()).impl(), x.impl());
}

TEST(Tensor, CudaRoundTrip) {
  if (!gta::cuda_available()) GTEST_SKIP() << "no CUDA device in this build or machine";
  gta_test::Rng rng(5);
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i64, DType::u16}) {
    SCOPED_TRACE(gta::dtype_name(t));
    Tensor x = gta::is_floating(t) ? gta_test::randn(rng, {3, 5, 7}, t) : arange({3, 5, 7}, t);
    Tensor g = x.to(Device::cuda());
    EXPECT_TRUE(g.device().is_cuda());
    EXPECT_EQ(g.shape(), x.shape());
    EXPECT_EQ(g.dtype(), t);
    EXPECT_EQ(g.to(Device::cuda()).impl(), g.impl());
    Tensor h = g.to(Device::cpu());
    EXPECT_TRUE(h.device().is_cpu());
    EXPECT_NE(h.storage(), x.storage());
    EXPECT_EQ(h.to_doubles(), x.to_doubles());
    EXPECT_EQ(g.to_doubles(), x.to_doubles());  // to_doubles reads device tensors too
  }
  // A non-contiguous view goes over in logical order.
  Tensor p = arange({2, 3}).transpose(0, 1);
  EXPECT_EQ(p.to(Device::cuda()).to(Device::cpu()).to_doubles(), (V{0, 3, 1, 4, 2, 5}));
  // zeros on the device.
  EXPECT_EQ(Tensor::zeros({4}, DType::f32, Device::cuda()).to(Device::cpu()).to_doubles(), V(4, 0.0));
}

}  // namespace
