// Copy kernels (CUDA): strided copies and dtype conversions between any two views on one device.
// Plain C++ declarations, no CUDA types: op and core sources include this and call the launchers
// under GTA_WITH_CUDA. Launchers run on the current device's stream (core/cuda_context.h) and
// take pointers to element 0 of each view; strides are in elements.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace gta::kernels {

// dst[i] = convert(src[i]) for every multi-index i of `shape` (ndim dims), dst and src with any
// non-negative strides, dtypes any of f32, bf16, f64, i32, i64, u16. Conversions give the same
// values as the CPU's copy_strided: f32 <-> bf16 round to nearest even, the rest through double.
void copy_strided(DType dst_dtype, void* dst, const int64_t* dst_strides, DType src_dtype, const void* src,
                  const int64_t* src_strides, const int64_t* shape, int ndim);

// dst[i] = convert(src[i]) for i < n, both contiguous.
void convert_contiguous(DType dst_dtype, void* dst, DType src_dtype, const void* src, int64_t n);

// ZeRO-1's segments (dist::Zero1): tensors lie back to back in one flat buffer and move in one
// launch per direction (per 128 tensors) instead of one copy per tensor.
struct FlatPiece {
  void* data = nullptr;  // contiguous, the bucket's dtype
  int64_t n = 0;
};
// flat[o_j + k] = piece_j[k], o_j = the sum of the earlier pieces' n (a copy of any dtype).
void gather_pieces(DType dtype, void* flat, const std::vector<FlatPiece>& pieces);
// piece_j[k] = flat[o_j + k].
void scatter_pieces(DType dtype, const void* flat, const std::vector<FlatPiece>& pieces);

}  // namespace gta::kernels
