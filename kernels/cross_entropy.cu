// Cross-entropy on the GPU, fused with the log-softmax, fp32 statistics:
//   forward   per row (one block): running (m, s) per thread over the row, merged in a fixed tree
//             (m, s) (+) (m', s') = (M, s e^(m-M) + s' e^(m'-M)); lse = m + log s;
//             row_loss = lse - x[t]; then one block sums the row losses in a fixed order (fp64
//             per-thread partials) and divides by the count of rows whose target is not ignored.
//   backward  dx[r, j] = (g / count) (exp(x[r, j] - lse[r]) - [j == t_r]), written in the logits'
//             dtype; ignored rows get 0.
// Logits are read in their own dtype: a bf16 [N, V] matrix is never widened to an fp32 copy.
#include <cuda_bf16.h>

#include "core/cuda_context.h"
#include "kernels/row_reduce.cuh"
#include "kernels/cross_entropy.h"

namespace gta::kernels {

namespace {



__device__ __forceinline__ int64_t target(const void* t, bool i64, int64_t r) {
  return i64 ? static_cast<const int64_t*>(t)[r] : static_cast<const int32_t*>(t)[r];
}

template <typename T>
__global__ void row_kernel(float* lse, float* row_loss, const T* x, const void* targets, bool i64, int64_t V,
                           int64_t ignore_index) {
  const int64_t r = blockIdx.x;
  const T* xr = x + r * V;
  float m = -INFINITY, s = 0.f;
  for (int64_t c = threadIdx.x; c < V; c += blockDim.x) lse_merge(m, s, ld(xr + c), 1.f);
  block_lse(m, s);
  if (threadIdx.x == 0) {
    const float L = m + logf(s);
    lse[r] = L;
    const int64_t t = target(targets, i64, r);
    row_loss[r] = t == ignore_index ? 0.f : (t < 0 || t >= V) ? NAN : L - ld(xr + t);
  }
}

constexpr int kSumThreads = 1024;

__global__ void total_kernel(float* loss, float* count, const float* row_loss, const void* targets, bool i64,
                             int64_t N, int64_t ignore_index) {
  __shared__ double rl[kSumThreads / 32];
  __shared__ long long rc[kSumThreads / 32];
  double acc = 0;
  long long cnt = 0;
  for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
    acc += row_loss[r];
    cnt += target(targets, i64, r) != ignore_index;
  }
  for (int o = 16; o > 0; o /= 2) {
    acc += __shfl_xor_sync(0xffffffffu, acc, o);
    cnt += __shfl_xor_sync(0xffffffffu, cnt, o);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    rl[warp] = acc;
    rc[warp] = cnt;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double a = 0;
    long long c = 0;
    for (int w = 0; w < kSumThreads / 32; ++w) {
      a += rl[w];
      c += rc[w];
    }
    count[0] = static_cast<float>(c);
    loss[0] = c ? static_cast<float>(a / static_cast<double>(c)) : 0.f;
  }
}

template <typename T>
__global__ void bwd_kernel(T* dx, const float* gout, const float* count, const float* lse, const T* x,
                           const void* targets, bool i64, int64_t V, int64_t ignore_index) {
  const int64_t r = blockIdx.x;
  const int64_t t = target(targets, i64, r);
  T* dr = dx + r * V;
  const T* xr = x + r * V;
  if (t == ignore_index) {
    for (int64_t c = threadIdx.x; c < V; c += blockDim.x) st(dr + c, 0.f);
    return;
  }
  const float gs = count[0] > 0 ? gout[0] / count[0] : 0.f;
  const float L = lse[r];
  for (int64_t c = threadIdx.x; c < V; c += blockDim.x) {
    const float p = expf(ld(xr + c) - L);
    st(dr + c, gs * (c == t ? p - 1.f : p));
  }
}

int threads_for(int64_t V) { return V >= 4096 ? 512 : V >= 512 ? 256 : 128; }

template <typename T>
void fwd_t(float* loss, float* count, float* lse, float* row_loss, const void* logits, const void* targets, bool i64,
           int64_t N, int64_t V, int64_t ignore_index) {
  GTA_CHECK(N < (1ll << 31), "cross_entropy (CUDA): too many rows ({})", N);
  cudaStream_t s = cuda::current_stream();
  if (N > 0) {
    row_kernel<T><<<static_cast<unsigned>(N), threads_for(V), 0, s>>>(lse, row_loss, static_cast<const T*>(logits),
                                                                      targets, i64, V, ignore_index);
    GTA_CUDA_CHECK_LAUNCH();
  }
  total_kernel<<<1, kSumThreads, 0, s>>>(loss, count, row_loss, targets, i64, N, ignore_index);
  GTA_CUDA_CHECK_LAUNCH();
}

template <typename T>
void bwd_t(void* dx, const float* gout, const float* count, const float* lse, const void* logits, const void* targets,
           bool i64, int64_t N, int64_t V, int64_t ignore_index) {
  if (N == 0) return;
  bwd_kernel<T><<<static_cast<unsigned>(N), threads_for(V), 0, cuda::current_stream()>>>(
      static_cast<T*>(dx), gout, count, lse, static_cast<const T*>(logits), targets, i64, V, ignore_index);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace

void cross_entropy_forward(DType dtype, float* loss, float* count, float* lse, float* row_loss, const void* logits,
                           const void* targets, bool targets_i64, int64_t N, int64_t V, int64_t ignore_index) {
  switch (dtype) {
    case DType::f32: return fwd_t<float>(loss, count, lse, row_loss, logits, targets, targets_i64, N, V, ignore_index);
    case DType::bf16:
      return fwd_t<__nv_bfloat16>(loss, count, lse, row_loss, logits, targets, targets_i64, N, V, ignore_index);
    default: fail("cross_entropy (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

void cross_entropy_backward(DType dtype, void* dx, const float* gout, const float* count, const float* lse,
                            const void* logits, const void* targets, bool targets_i64, int64_t N, int64_t V,
                            int64_t ignore_index) {
  switch (dtype) {
    case DType::f32: return bwd_t<float>(dx, gout, count, lse, logits, targets, targets_i64, N, V, ignore_index);
    case DType::bf16:
      return bwd_t<__nv_bfloat16>(dx, gout, count, lse, logits, targets, targets_i64, N, V, ignore_index);
    default: fail("cross_entropy backward (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

}  // namespace gta::kernels
