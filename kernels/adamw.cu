// Multi-tensor optimizer kernels: all parameters of a step in one launch. The host cuts every
// tensor into chunks of kChunk elements and uploads (tensor descriptors, chunk list); block b
// handles chunks b, b + gridDim.x, ...; each element is updated independently.
//
// AdamW (as src/optim/adamw.h, elementwise, fp32 state):
//   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
//   w = (master or p) * (1 - lr wd)   [decay tensors]
//   w = w - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps);  master = w;  p = round(w)
// Global norm: sum g^2 in fp64, one block per chunk (fixed tree) -> partial[chunk], then one block
// sums the partials (fixed tree): the order depends only on the tensor list and sizes, so the
// norm is bit-identical run to run. Scaling: g = g * factor computed in double (as the CPU does).
#include <cuda_bf16.h>

#include <algorithm>

#include "core/cuda_context.h"
#include "core/cuda_runtime.h"
#include "kernels/adamw.h"
#include "kernels/row_reduce.cuh"

namespace gta::kernels {

namespace {

constexpr int64_t kChunk = 1 << 16;
constexpr int kThreads = 256;

struct Chunk {
  int64_t tensor;
  int64_t start;
};

__device__ __forceinline__ float load_f(const void* p, DType t, int64_t i) {
  return t == DType::bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i])
                          : static_cast<const float*>(p)[i];
}

__global__ void adamw_kernel(const AdamWTensor* ts, const Chunk* chunks, int64_t nchunks, AdamWCoeffs c) {
  for (int64_t ci = blockIdx.x; ci < nchunks; ci += gridDim.x) {
    const Chunk ch = chunks[ci];
    const AdamWTensor t = ts[ch.tensor];
    const int64_t end = min(t.n, ch.start + kChunk);
    for (int64_t i = ch.start + threadIdx.x; i < end; i += blockDim.x) {
      const float g = load_f(t.grad, t.grad_dtype, i);
      const float mi = c.b1 * t.m[i] + c.one_minus_b1 * g;
      const float vi = c.b2 * t.v[i] + c.one_minus_b2 * g * g;
      t.m[i] = mi;
      t.v[i] = vi;
      float w = t.master ? t.master[i] : load_f(t.param, t.param_dtype, i);
      if (t.decay) w = w * c.decay_mult;
      const float mhat = mi * c.inv_bc1;
      const float vhat = vi * c.inv_bc2;
      w = w - c.lr * mhat / (sqrtf(vhat) + c.eps);
      if (t.master) t.master[i] = w;
      if (t.param_dtype == DType::bf16)
        static_cast<__nv_bfloat16*>(t.param)[i] = __float2bfloat16_rn(w);
      else
        static_cast<float*>(t.param)[i] = w;
    }
  }
}

__global__ void sumsq_kernel(const GradRef* ts, const Chunk* chunks, int64_t nchunks, double* partial) {
  for (int64_t ci = blockIdx.x; ci < nchunks; ci += gridDim.x) {
    const Chunk ch = chunks[ci];
    const GradRef t = ts[ch.tensor];
    const int64_t end = min(t.n, ch.start + kChunk);
    double acc = 0;
    for (int64_t i = ch.start + threadIdx.x; i < end; i += blockDim.x) {
      const double x = load_f(t.data, t.dtype, i);
      acc += x * x;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[ci] = acc;
  }
}

__global__ void total_kernel(const double* partial, int64_t n, double* out) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) out[0] = acc;
}

__global__ void scale_kernel(const GradRef* ts, const Chunk* chunks, int64_t nchunks, double factor) {
  for (int64_t ci = blockIdx.x; ci < nchunks; ci += gridDim.x) {
    const Chunk ch = chunks[ci];
    const GradRef t = ts[ch.tensor];
    const int64_t end = min(t.n, ch.start + kChunk);
    for (int64_t i = ch.start + threadIdx.x; i < end; i += blockDim.x) {
      if (t.dtype == DType::bf16) {
        auto* p = static_cast<__nv_bfloat16*>(t.data);
        p[i] = __float2bfloat16_rn(static_cast<float>(static_cast<double>(__bfloat162float(p[i])) * factor));
      } else {
        auto* p = static_cast<float*>(t.data);
        p[i] = static_cast<float>(static_cast<double>(p[i]) * factor);
      }
    }
  }
}

// Device copies of the descriptors and the chunk list; freed (stream-ordered) on destruction.
template <typename D>
struct Upload {
  int dev = 0;
  D* descs = nullptr;
  Chunk* chunks = nullptr;
  int64_t nchunks = 0;
  Upload(const std::vector<D>& ts, int64_t (*numel)(const D&)) {
    GTA_CUDA_CHECK(cudaGetDevice(&dev));
    std::vector<Chunk> ch;
    for (size_t k = 0; k < ts.size(); ++k)
      for (int64_t s = 0; s < numel(ts[k]); s += kChunk) ch.push_back({static_cast<int64_t>(k), s});
    nchunks = static_cast<int64_t>(ch.size());
    if (nchunks == 0) return;
    descs = static_cast<D*>(cuda::device_alloc(sizeof(D) * ts.size(), dev));
    chunks = static_cast<Chunk*>(cuda::device_alloc(sizeof(Chunk) * ch.size(), dev));
    cuda::copy(descs, true, ts.data(), false, sizeof(D) * ts.size());
    cuda::copy(chunks, true, ch.data(), false, sizeof(Chunk) * ch.size());
  }
  ~Upload() {
    if (descs) cuda::device_free(descs, dev);
    if (chunks) cuda::device_free(chunks, dev);
  }
  unsigned grid() const { return cuda::grid_for(nchunks * kThreads, kThreads, 4); }
};

int64_t adam_numel(const AdamWTensor& t) { return t.n; }
int64_t grad_numel(const GradRef& t) { return t.n; }

void check_dtype(DType t, const char* what) {
  GTA_CHECK(t == DType::f32 || t == DType::bf16, "{} (CUDA): dtype {} is not supported (f32, bf16)", what,
            dtype_name(t));
}

}  // namespace

void adamw_step(const std::vector<AdamWTensor>& tensors, const AdamWCoeffs& c) {
  for (const AdamWTensor& t : tensors) {
    check_dtype(t.param_dtype, "AdamW parameter");
    check_dtype(t.grad_dtype, "AdamW gradient");
  }
  Upload<AdamWTensor> up(tensors, adam_numel);
  if (up.nchunks == 0) return;
  adamw_kernel<<<up.grid(), kThreads, 0, cuda::current_stream()>>>(up.descs, up.chunks, up.nchunks, c);
  GTA_CUDA_CHECK_LAUNCH();
}

double grad_sum_squares(const std::vector<GradRef>& grads) {
  for (const GradRef& g : grads) check_dtype(g.dtype, "grad norm");
  Upload<GradRef> up(grads, grad_numel);
  if (up.nchunks == 0) return 0.0;
  cudaStream_t s = cuda::current_stream();
  auto* partial = static_cast<double*>(cuda::device_alloc(sizeof(double) * (up.nchunks + 1), up.dev));
  sumsq_kernel<<<up.grid(), kThreads, 0, s>>>(up.descs, up.chunks, up.nchunks, partial);
  GTA_CUDA_CHECK_LAUNCH();
  total_kernel<<<1, 1024, 0, s>>>(partial, up.nchunks, partial + up.nchunks);
  GTA_CUDA_CHECK_LAUNCH();
  double out = 0;
  cuda::copy(&out, false, partial + up.nchunks, true, sizeof(double));  // synchronizes
  cuda::device_free(partial, up.dev);
  return out;
}

void scale_grads(const std::vector<GradRef>& grads, double factor) {
  for (const GradRef& g : grads) check_dtype(g.dtype, "scale_grads");
  Upload<GradRef> up(grads, grad_numel);
  if (up.nchunks == 0) return;
  scale_kernel<<<up.grid(), kThreads, 0, cuda::current_stream()>>>(up.descs, up.chunks, up.nchunks, factor);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace gta::kernels
