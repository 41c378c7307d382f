#include "core/dtype.h"

#include "core/error.h"

namespace gta {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::f64: return 8;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u16: return 2;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u16: return "u16";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (DType t : {DType::f32, DType::bf16, DType::f64, DType::i32, DType::i64, DType::u16})
    if (name == dtype_name(t)) return t;
  fail("unknown dtype '{}' (expected one of f32, bf16, f64, i32, i64, u16)", name);
}

bool is_floating(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f64; }

}  // namespace gta
