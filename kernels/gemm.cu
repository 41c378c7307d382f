// Matrix products through cuBLASLt.
//
//   C_b = alpha * A_b @ B_b + beta * C_b            (row-major, b < batch)
//   epilogue bias:       C[i, j] += vec[j]          (linear's y = x W^T + b)
//   epilogue row_sums_a: vec[i] = sum_l A[i, l]     (linear's db = sum over rows of g, taken while
//                                                    computing dW = g^T x: A = g^T)
//
// cuBLASLt is column-major. A row-major [r, c] matrix with leading dimension ld is the same memory
// as a column-major [c, r] matrix with that ld, so C = A B is computed as C^T = B^T A^T: cuBLASLt's
// "A" is our B (rows n), its "B" is our A (columns m), its D is our C as an [n, m] matrix. Then
// cuBLASLt's BIAS epilogue (a vector over D's rows) is our per-column bias, and its BGRADB epilogue
// (the sum of its B over k, one entry per column of D) is the row sums of our A.
//
// Precision: f32 uses CUBLAS_COMPUTE_32F (true fp32; CUBLAS_COMPUTE_32F_FAST_TF32 only when TF32
// is allowed), bf16 uses bf16 operands with CUBLAS_COMPUTE_32F accumulation and fp32 alpha/beta,
// f64 CUBLAS_COMPUTE_64F.
//
// Determinism: one plan (descriptors + algorithm from the heuristic) per distinct problem (dtype,
// shape, layouts, batch, epilogue, pointer alignments, TF32 flag, device), made once and reused;
// a fixed 32 MiB workspace per device; split-K with in-place reduction excluded from the
// heuristic (the out-of-place schemes reduce in a fixed order in a separate step).
#include <array>
#include <map>
#include <memory>
#include <mutex>

#include "core/cuda_context.h"
#include "core/cuda_runtime.h"
#include "kernels/copy.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"

namespace gta::kernels {

namespace {

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;  // cuBLASLt's A (our B), B (our A), C=D
  cublasLtMatmulAlgo_t algo{};
  bool ok = false;  // an algorithm was found
  ~Plan() {
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

using Key = std::array<int64_t, 24>;

std::mutex g_mu;
std::map<Key, std::unique_ptr<Plan>>& plans() {
  static auto* m = new std::map<Key, std::unique_ptr<Plan>>();  // never freed (static teardown order)
  return *m;
}

int64_t alignment(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  int64_t a = 256;
  while (a > 1 && v % a) a /= 2;
  return a;
}

cudaDataType cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::f64: return CUDA_R_64F;
    default: fail("gemm: dtype {} is not supported on CUDA (use f32, bf16 or f64)", dtype_name(t));
  }
}

cublasLtMatrixLayout_t make_layout(cudaDataType t, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                   int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  GTA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, t, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    GTA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    GTA_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return l;
}

// Builds the plan for one problem; plan->ok is false when cuBLASLt offers no algorithm for it.
std::unique_ptr<Plan> make_plan(DType dtype, bool tf32, int64_t m, int64_t n, int64_t k, const MatRef& a,
                                const MatRef& b, const void* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                GemmEpilogue epi, void* vec) {
  auto p = std::make_unique<Plan>();
  const cudaDataType t = cuda_type(dtype);
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cudaDataType scale = CUDA_R_32F;
  if (dtype == DType::f64) {
    compute = CUBLAS_COMPUTE_64F;
    scale = CUDA_R_64F;
  } else if (dtype == DType::f32 && tf32) {
    compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  }
  GTA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, compute, scale));
  const cublasOperation_t op_a = b.trans ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's A is our B
  const cublasOperation_t op_b = a.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  GTA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  GTA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  if (epi != GemmEpilogue::none) {
    const cublasLtEpilogue_t e = epi == GemmEpilogue::bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_BGRADB;
    GTA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof(e)));
    GTA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &vec, sizeof(vec)));
  }
  // Our B [k, n]: row-major it is a column-major [n, k] (op N); transposed, a column-major [k, n] (op T).
  p->la = b.trans ? make_layout(t, k, n, b.ld, batch, b.batch_stride) : make_layout(t, n, k, b.ld, batch, b.batch_stride);
  p->lb = a.trans ? make_layout(t, m, k, a.ld, batch, a.batch_stride) : make_layout(t, k, m, a.ld, batch, a.batch_stride);
  p->lc = make_layout(t, n, m, ldc, batch, stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  GTA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = cuda::cublaslt_workspace_bytes();
  const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE |
                           CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
  const uint32_t al_a = static_cast<uint32_t>(alignment(b.ptr)), al_b = static_cast<uint32_t>(alignment(a.ptr)),
                 al_c = static_cast<uint32_t>(alignment(c));
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  auto set = [&](cublasLtMatmulPreferenceAttributes_t attr, const void* v, size_t size) {
    GTA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, v, size));
  };
  set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  set(CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes, sizeof(schemes));
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a));
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b));
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c));
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  st = cublasLtMatmulAlgoGetHeuristic(cuda::cublaslt_handle(), p->desc, p->la, p->lb, p->lc, p->lc, pref, 1, &result,
                                      &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    p->algo = result.algo;
    p->ok = true;
  } else if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) {
    GTA_CUBLAS_CHECK(st);
  }
  return p;
}

// The cached plan for a problem (made on first use). Holds g_mu's lock while the caller runs it:
// the plan's descriptor carries the epilogue vector pointer, set per call.
Plan& plan_for(std::unique_lock<std::mutex>& lock, DType dtype, int64_t m, int64_t n, int64_t k, const MatRef& a,
               const MatRef& b, const void* c, int64_t ldc, int64_t stride_c, int64_t batch, GemmEpilogue epi,
               void* vec) {
  const bool tf32 = dtype == DType::f32 && cuda::allow_tf32();
  const Key key = {static_cast<int64_t>(dtype), tf32, m, n, k, a.ld, a.trans, a.batch_stride, b.ld, b.trans,
                   b.batch_stride, ldc, stride_c, batch, static_cast<int64_t>(epi), alignment(a.ptr),
                   alignment(b.ptr), alignment(c), epi == GemmEpilogue::none ? 0 : alignment(vec),
                   cuda::current_device(), 0, 0, 0, 0};
  lock = std::unique_lock<std::mutex>(g_mu);
  auto& ps = plans();
  auto it = ps.find(key);
  if (it == ps.end())
    it = ps.emplace(key, make_plan(dtype, tf32, m, n, k, a, b, c, ldc, stride_c, batch, epi, vec)).first;
  return *it->second;
}

void run_plan(Plan& p, DType dtype, const MatRef& a, const MatRef& b, void* c, double alpha, double beta,
              GemmEpilogue epi, void* vec) {
  if (epi != GemmEpilogue::none)
    GTA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &vec, sizeof(vec)));
  const float af = static_cast<float>(alpha), bf = static_cast<float>(beta);
  const void* pa = dtype == DType::f64 ? static_cast<const void*>(&alpha) : &af;
  const void* pb = dtype == DType::f64 ? static_cast<const void*>(&beta) : &bf;
  GTA_CUBLAS_CHECK(cublasLtMatmul(cuda::cublaslt_handle(), p.desc, pa, b.ptr, p.la, a.ptr, p.lb, pb, c, p.lc, c, p.lc,
                                  &p.algo, cuda::cublaslt_workspace(), cuda::cublaslt_workspace_bytes(),
                                  cuda::current_stream()));
}

}  // namespace

int64_t gemm_plan_count() {
  std::lock_guard<std::mutex> lock(g_mu);
  return static_cast<int64_t>(plans().size());
}

void gemm(DType dtype, int64_t m, int64_t n, int64_t k, const MatRef& a, const MatRef& b, void* c, int64_t ldc,
          int64_t stride_c, int64_t batch, double alpha, double beta, GemmEpilogue epi, void* vec) {
  GTA_CHECK(batch >= 1 && batch < (int64_t(1) << 31), "gemm: batch {}", batch);
  GTA_CHECK(epi == GemmEpilogue::none || (batch == 1 && vec), "gemm: an epilogue needs batch 1 and a vector");
  if (m == 0 || n == 0) {
    if (epi == GemmEpilogue::row_sums_a && m > 0) fill(dtype, vec, m, 0.0);
    return;
  }
  if (k == 0) {  // C = beta * C (+ bias); cuBLASLt wants k >= 1. Degenerate: a few launches are fine.
    GTA_CHECK(beta == 0 || beta == 1, "gemm: k = 0 with beta {} is not supported", beta);
    if (beta == 0) {
      if (ldc == n && stride_c == m * n)
        fill(dtype, c, batch * m * n, 0.0);
      else
        for (int64_t i = 0; i < batch; ++i)
          for (int64_t r = 0; r < m; ++r)
            fill(dtype, static_cast<char*>(c) + (i * stride_c + r * ldc) * dtype_size(dtype), n, 0.0);
    }
    if (epi == GemmEpilogue::bias) {
      GTA_CHECK(ldc == n, "gemm: k = 0 with a bias needs a contiguous C");
      const int64_t shape[2] = {m, n}, cs[2] = {ldc, 1}, bs[2] = {0, 1};
      binary(BinaryOp::add, dtype, c, c, cs, vec, bs, shape, 2);
    }
    if (epi == GemmEpilogue::row_sums_a) fill(dtype, vec, m, 0.0);
    return;
  }
  {
    std::unique_lock<std::mutex> lock;
    Plan& p = plan_for(lock, dtype, m, n, k, a, b, c, ldc, stride_c, batch, epi, vec);
    if (p.ok) {
      run_plan(p, dtype, a, b, c, alpha, beta, epi, vec);
      return;
    }
    GTA_CHECK(epi != GemmEpilogue::none, "gemm: cuBLASLt has no algorithm for {} m={} n={} k={} batch={}",
              dtype_name(dtype), m, n, k, batch);
  }
  // The epilogue cannot be fused here: run the plain product and the epilogue separately.
  if (epi == GemmEpilogue::bias) {
    GTA_CHECK(beta == 0, "gemm: unfused bias epilogue needs beta 0");
    const int64_t shape[2] = {m, n}, cs[2] = {ldc, 1}, bs[2] = {0, 1};
    copy_strided(dtype, c, cs, dtype, vec, bs, shape, 2);
    gemm(dtype, m, n, k, a, b, c, ldc, stride_c, batch, alpha, 1.0);
    return;
  }
  gemm(dtype, m, n, k, a, b, c, ldc, stride_c, batch, alpha, beta);
  // vec[i] = sum_l A[i, l]: A is [m, k] row-major (rows reduced) or [k, m] row-major read transposed.
  if (!a.trans) {
    GTA_CHECK(a.ld == k, "gemm: row sums of a strided A");
    sum_middle(dtype, a.ptr, dtype, vec, m, k, 1);
  } else {
    GTA_CHECK(a.ld == m, "gemm: row sums of a strided A");
    sum_middle(dtype, a.ptr, dtype, vec, 1, k, m);
  }
}

}  // namespace gta::kernels
