// Elementwise and reduction kernels (CUDA) for src/ops/elementwise.cpp. Plain C++ declarations,
// no CUDA types. Launchers run on the current device's stream; dtypes f32, bf16 (stored as bf16,
// computed in fp32) and f64 unless noted; strides in elements; pointers at element 0 of a view.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace gta::kernels {

enum class BinaryOp { add, sub, mul };

// out[i] = a[i] op b[i] for every multi-index i of `shape`; out contiguous, a and b read through
// their strides (0 along broadcast dimensions).
void binary(BinaryOp op, DType dtype, void* out, const void* a, const int64_t* a_strides, const void* b,
            const int64_t* b_strides, const int64_t* shape, int ndim);

enum class UnaryOp { scale, sigmoid, silu };

// out[k] = f(x[k]) for k < n, contiguous: scale x*alpha, sigmoid 1/(1+e^-x), silu x*sigmoid(x).
void unary(UnaryOp op, DType dtype, void* out, const void* x, int64_t n, double alpha = 0);

// dx = g * y * (1 - y)            (y = sigmoid(x), saved by the forward)
void sigmoid_backward(DType dtype, void* dx, const void* g, const void* y, int64_t n);
// dx = g * s * (1 + x * (1 - s)),  s = sigmoid(x)
void silu_backward(DType dtype, void* dx, const void* g, const void* x, int64_t n);

// SwiGLU's gated unit, fused (one pass instead of silu then mul), contiguous:
//   out = silu(a) * b;   backward: da = g * b * s * (1 + a (1 - s)),  db = g * silu(a),  s = sigmoid(a)
void swiglu(DType dtype, void* out, const void* a, const void* b, int64_t n);
void swiglu_backward(DType dtype, void* da, void* db, const void* g, const void* a, const void* b, int64_t n);

// dst[k] += src[k] for k < n (contiguous).
void add_inplace(DType dtype, void* dst, const void* src, int64_t n);

// dst[k] = value for k < n (contiguous), any dtype (the value converted as the CPU does).
void fill(DType dtype, void* dst, int64_t n, double value);

// out[p, q] = sum over r < R of x[p, r, q] for x contiguous [P, R, Q], accumulated in fp32 (fp64
// for f64). out_dtype is x's dtype or its accumulation type (f32 for bf16 input), so multi-pass
// reductions keep fp32 partials. Deterministic: the summation order depends only on the shape
// (chunks of rows reduced in fixed order, partials in a second pass; no atomics).
void sum_middle(DType in_dtype, const void* x, DType out_dtype, void* out, int64_t P, int64_t R, int64_t Q);

}  // namespace gta::kernels
