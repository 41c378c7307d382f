// Embedding on the GPU:
//   forward   out[r, :] = W[id_r, :]
//   backward  dW[v, :] = sum_{r : id_r = v} g[r, :]
// The backward is deterministic: the tokens are grouped by id on the host (a stable counting sort,
// passed as rows / offsets / perm), and one block owns each distinct vocabulary row, summing its
// tokens' gradient rows in token order in fp32. No atomics.
#include <cuda_bf16.h>

#include "core/cuda_context.h"
#include "kernels/row_reduce.cuh"
#include "kernels/embedding.h"

namespace gta::kernels {

namespace {


template <typename T, typename I>
__global__ void gather_kernel(T* out, const T* w, const I* ids, int64_t n, int64_t d) {
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const T* src = w + static_cast<int64_t>(ids[r]) * d;
    T* dst = out + r * d;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) dst[c] = src[c];
  }
}

template <typename T>
__global__ void scatter_kernel(T* dw, const T* g, const int64_t* rows, const int64_t* offsets, const int64_t* perm,
                               int64_t n_rows, int64_t d) {
  for (int64_t u = blockIdx.x; u < n_rows; u += gridDim.x) {
    const int64_t k0 = offsets[u], k1 = offsets[u + 1];
    T* dst = dw + rows[u] * d;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
      float acc = 0.f;
      for (int64_t k = k0; k < k1; ++k) acc += ld(g + perm[k] * d + c);
      st(dst + c, acc);
    }
  }
}

template <typename T>
void forward_t(void* out, const void* w, const void* ids, bool i64, int64_t n, int64_t d) {
  if (n == 0 || d == 0) return;
  const unsigned grid = static_cast<unsigned>(n < 65535 ? n : 65535);
  const int threads = d >= 256 ? 256 : 128;
  if (i64)
    gather_kernel<T, int64_t><<<grid, threads, 0, cuda::current_stream()>>>(
        static_cast<T*>(out), static_cast<const T*>(w), static_cast<const int64_t*>(ids), n, d);
  else
    gather_kernel<T, int32_t><<<grid, threads, 0, cuda::current_stream()>>>(
        static_cast<T*>(out), static_cast<const T*>(w), static_cast<const int32_t*>(ids), n, d);
  GTA_CUDA_CHECK_LAUNCH();
}

template <typename T>
void backward_t(void* dw, const void* g, const int64_t* rows, const int64_t* offsets, const int64_t* perm,
                int64_t n_rows, int64_t d) {
  if (n_rows == 0 || d == 0) return;
  const unsigned grid = static_cast<unsigned>(n_rows < 65535 ? n_rows : 65535);
  const int threads = d >= 256 ? 256 : 128;
  scatter_kernel<T><<<grid, threads, 0, cuda::current_stream()>>>(static_cast<T*>(dw), static_cast<const T*>(g), rows,
                                                                  offsets, perm, n_rows, d);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace

void embedding_forward(DType dtype, void* out, const void* w, const void* ids, bool ids_i64, int64_t n, int64_t d) {
  switch (dtype) {
    case DType::f32: return forward_t<float>(out, w, ids, ids_i64, n, d);
    case DType::bf16: return forward_t<__nv_bfloat16>(out, w, ids, ids_i64, n, d);
    default: fail("embedding (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

void embedding_backward(DType dtype, void* dw, const void* g, const int64_t* rows, const int64_t* offsets,
                        const int64_t* perm, int64_t n_rows, int64_t d) {
  switch (dtype) {
    case DType::f32: return backward_t<float>(dw, g, rows, offsets, perm, n_rows, d);
    case DType::bf16: return backward_t<__nv_bfloat16>(dw, g, rows, offsets, perm, n_rows, d);
    default: fail("embedding backward (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

}  // namespace gta::kernels
