// Element types. bf16 is stored as the upper 16 bits of an IEEE float32 and converted with
// round-to-nearest-even; f64 exists for gradient checks and golden vectors.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace gta {

enum class DType : uint8_t { f32, bf16, f64, i32, i64, u16 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);      // "f32", "bf16", ...
DType dtype_from_name(const std::string& name);  // inverse of dtype_name; throws on unknown
bool is_floating(DType t);

struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a quiet NaN
      bits = static_cast<uint16_t>((u >> 16) | 0x40);
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
      bits = static_cast<uint16_t>(u >> 16);
    }
  }
  explicit operator float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// C++ type -> DType, for templated kernels and typed accessors.
template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<uint16_t> { static constexpr DType value = DType::u16; };

}  // namespace gta
