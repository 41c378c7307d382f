// The strided copy behind Tensor's copies and conversions (ops/views.cpp), for callers that copy
// into a view they already hold (gradient buckets, ZeRO-1 segments, caches).
#pragma once
#include "core/tensor.h"

namespace gta {

// Copies src into dst elementwise (same shape, any strides, any dtypes, one device; the CUDA
// copy kernels on a GPU).
void copy_strided(const Tensor& dst, const Tensor& src);

}  // namespace gta
