// Helpers for walking strided tensors on the CPU.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace gta {

// Converts one element between any two dtypes (through double, exact for every pair we use).
template <typename T> inline double to_double(T v) { return static_cast<double>(v); }
template <> inline double to_double<bf16>(bf16 v) { return static_cast<float>(v); }
template <typename T> inline T from_double(double v) { return static_cast<T>(v); }
template <> inline bf16 from_double<bf16>(double v) { return bf16(static_cast<float>(v)); }

// Calls fn(type_tag) with a value of the C++ type matching `t`.
template <typename Fn>
auto dispatch_all(DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: return fn(float{});
    case DType::f64: return fn(double{});
    case DType::bf16: return fn(bf16{});
    case DType::i32: return fn(int32_t{});
    case DType::i64: return fn(int64_t{});
    case DType::u16: return fn(uint16_t{});
  }
  return fn(float{});
}

}  // namespace gta
