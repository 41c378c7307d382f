// Matrix products on the GPU through cuBLASLt (kernels/gemm.cu), for src/ops/linear.cpp. Plain
// C++ declarations, no CUDA types. Row-major throughout: the launcher maps to cuBLASLt's column-
// major convention itself.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace gta::kernels {

// A logical matrix operand X [rows, cols]: element (r, c) sits at ptr[r * ld + c] (row-major),
// or at ptr[c * ld + r] when trans (a row-major matrix read transposed); batch entry b starts at
// ptr + b * batch_stride (elements).
struct MatRef {
  const void* ptr = nullptr;
  int64_t ld = 0;
  bool trans = false;
  int64_t batch_stride = 0;
};

enum class GemmEpilogue {
  none,
  bias,        // C[i, j] += vec[j]        (vec has n entries; batch 1)
  row_sums_a,  // vec[i] = sum_l A[i, l]    (m entries; batch 1): the bias gradient of linear
};

// For b < batch: C_b = alpha * A_b @ B_b + beta * C_b, with A_b [m, k], B_b [k, n] and C_b
// row-major [m, n] at c + b * stride_c with leading dimension ldc. dtype f32 (exact fp32
// arithmetic unless gta::cuda::set_allow_tf32(true)), bf16 (fp32 accumulation, CUBLAS_COMPUTE_32F)
// or f64. Deterministic: the algorithm is chosen once per shape/layout/alignment by cuBLASLt's
// heuristic and cached, with a fixed workspace, and split-K algorithms that reduce in place
// (through the output) are excluded. An epilogue cuBLASLt cannot fuse for the case is run as a
// separate kernel (bias: rows of C set to vec, then beta = 1; row sums: a deterministic reduction).
void gemm(DType dtype, int64_t m, int64_t n, int64_t k, const MatRef& a, const MatRef& b, void* c, int64_t ldc,
          int64_t stride_c, int64_t batch, double alpha, double beta, GemmEpilogue epilogue = GemmEpilogue::none,
          void* vec = nullptr);

// Number of cached GEMM plans (for tests: a repeated shape must not add one).
int64_t gemm_plan_count();

}  // namespace gta::kernels
