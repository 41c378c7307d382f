// Multi-tensor optimizer kernels: all parameters of a step in one launch. The host cuts every
// tensor into chunks of kChunk elements and uploads (tensor descriptors, chunk list); block b
// handles chunks b, b + gridDim.x, ...; each element is updated independently, a thread taking 4
// consecutive ones per access where the tensor's arrays are 16-byte aligned (for_chunk).
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
__device__ __forceinline__ void store_f(void* p, DType t, int64_t i, float v) {
  if (t == DType::bf16) static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  else static_cast<float*>(p)[i] = v;
}
// Elements i..i+3 (i a multiple of 4, the array 16-byte aligned) in one 16-byte (f32) or 8-byte
// (bf16) access: the kernels below are bound by memory, and wide accesses keep more bytes in flight.
__device__ __forceinline__ float4 load4(const void* p, DType t, int64_t i) {
  if (t == DType::bf16) {
    const uint2 u = *reinterpret_cast<const uint2*>(static_cast<const __nv_bfloat16*>(p) + i);
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
    const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
    return make_float4(a.x, a.y, b.x, b.y);
  }
  return *reinterpret_cast<const float4*>(static_cast<const float*>(p) + i);
}
__device__ __forceinline__ void store4(void* p, DType t, int64_t i, float4 v) {
  if (t == DType::bf16) {
    __nv_bfloat162 ab[2] = {__floats2bfloat162_rn(v.x, v.y), __floats2bfloat162_rn(v.z, v.w)};
    *reinterpret_cast<uint2*>(static_cast<__nv_bfloat16*>(p) + i) = *reinterpret_cast<const uint2*>(ab);
  } else {
    *reinterpret_cast<float4*>(static_cast<float*>(p) + i) = v;
  }
}
__device__ __forceinline__ float& at(float4& v, int k) { return reinterpret_cast<float*>(&v)[k]; }

// Visits the elements of chunk [start, end) of a block: fn4(i) for groups of 4 (when `vec`: every
// array of the tensor 16-byte aligned) and fn1(i) for the rest, each element exactly once.
template <typename Fn4, typename Fn1>
__device__ __forceinline__ void for_chunk(int64_t start, int64_t end, bool vec, Fn4&& fn4, Fn1&& fn1) {
  int64_t rest = start;
  if (vec) {
    const int64_t groups = (end - start) / 4;
    for (int64_t q = threadIdx.x; q < groups; q += blockDim.x) fn4(start + 4 * q);
    rest = start + 4 * groups;
  }
  for (int64_t i = rest + threadIdx.x; i < end; i += blockDim.x) fn1(i);
}

// A tensor's descriptor with whether its arrays allow the 4-wide accesses.
template <typename T>
struct Desc {
  T t;
  bool vec;
};
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The AdamW update of one element (see the top of the file).
__device__ __forceinline__ void adamw_elem(float g, float& m, float& v, float& w, bool decay, const AdamWCoeffs& c) {
  m = c.b1 * m + c.one_minus_b1 * g;
  v = c.b2 * v + c.one_minus_b2 * g * g;
  if (decay) w = w * c.decay_mult;
  const float mhat = m * c.inv_bc1;
  const float vhat = v * c.inv_bc2;
  w = w - c.lr * mhat / (sqrtf(vhat) + c.eps);
}

__global__ void adamw_kernel(const Desc<AdamWTensor>* ts, const Chunk* chunks, int64_t nchunks, AdamWCoeffs c) {
  for (int64_t ci = blockIdx.x; ci < nchunks; ci += gridDim.x) {
    const Chunk ch = chunks[ci];
    const AdamWTensor t = ts[ch.tensor].t;
    for_chunk(
        ch.start, min(t.n, ch.start + kChunk), ts[ch.tensor].vec,
        [&](int64_t i) {
          float4 g = load4(t.grad, t.grad_dtype, i);
          float4 m = *reinterpret_cast<const float4*>(t.m + i), v = *reinterpret_cast<const float4*>(t.v + i);
          float4 w = t.master ? *reinterpret_cast<const float4*>(t.master + i) : load4(t.param, t.param_dtype, i);
#pragma unroll
          for (int k = 0; k < 4; ++k) adamw_elem(at(g, k), at(m, k), at(v, k), at(w, k), t.decay, c);
          *reinterpret_cast<float4*>(t.m + i) = m;
          *reinterpret_cast<float4*>(t.v + i) = v;
          if (t.master) *reinterpret_cast<float4*>(t.master + i) = w;
          store4(t.param, t.param_dtype, i, w);
        },
        [&](int64_t i) {
          float m = t.m[i], v = t.v[i], w = t.master ? t.master[i] : load_f(t.param, t.param_dtype, i);
          adamw_elem(load_f(t.grad, t.grad_dtype, i), m, v, w, t.decay, c);
          t.m[i] = m;
          t.v[i] = v;
          if (t.master) t.master[i] = w;
          store_f(t.param, t.param_dtype, i, w);
        });
  }
}

__global__ void sumsq_kernel(const Desc<GradRef>* ts, const Chunk* chunks, int64_t nchunks, double* partial) {
  for (int64_t ci = blockIdx.x; ci < nchunks; ci += gridDim.x) {
    const Chunk ch = chunks[ci];
    const GradRef t = ts[ch.tensor].t;
    double acc = 0;
    for_chunk(
        ch.start, min(t.n, ch.start + kChunk), ts[ch.tensor].vec,
        [&](int64_t i) {
          float4 x = load4(t.data, t.dtype, i);
#pragma unroll
          for (int k = 0; k < 4; ++k) acc += static_cast<double>(at(x, k)) * at(x, k);
        },
        [&](int64_t i) {
          const double x = load_f(t.data, t.dtype, i);
          acc += x * x;
        });
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

// g * factor in double, rounded once to g's dtype (through fp32, as the CPU does).
__device__ __forceinline__ float scaled(float g, double factor) {
  return static_cast<float>(static_cast<double>(g) * factor);
}

__global__ void scale_kernel(const Desc<GradRef>* ts, const Chunk* chunks, int64_t nchunks, double factor) {
  for (int64_t ci = blockIdx.x; ci < nchunks; ci += gridDim.x) {
    const Chunk ch = chunks[ci];
    const GradRef t = ts[ch.tensor].t;
    for_chunk(
        ch.start, min(t.n, ch.start + kChunk), ts[ch.tensor].vec,
        [&](int64_t i) {
          float4 x = load4(t.data, t.dtype, i);
#pragma unroll
          for (int k = 0; k < 4; ++k) at(x, k) = scaled(at(x, k), factor);
          store4(t.data, t.dtype, i, x);
        },
        [&](int64_t i) { store_f(t.data, t.dtype, i, scaled(load_f(t.data, t.dtype, i), factor)); });
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

int64_t adam_numel(const Desc<AdamWTensor>& d) { return d.t.n; }
int64_t grad_numel(const Desc<GradRef>& d) { return d.t.n; }

std::vector<Desc<AdamWTensor>> describe(const std::vector<AdamWTensor>& ts) {
  std::vector<Desc<AdamWTensor>> out;
  for (const AdamWTensor& t : ts)
    out.push_back({t, aligned16(t.param) && aligned16(t.master) && aligned16(t.m) && aligned16(t.v) &&
                          aligned16(t.grad)});
  return out;
}
std::vector<Desc<GradRef>> describe(const std::vector<GradRef>& ts) {
  std::vector<Desc<GradRef>> out;
  for (const GradRef& t : ts) out.push_back({t, aligned16(t.data)});
  return out;
}

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
  Upload<Desc<AdamWTensor>> up(describe(tensors), adam_numel);
  if (up.nchunks == 0) return;
  adamw_kernel<<<up.grid(), kThreads, 0, cuda::current_stream()>>>(up.descs, up.chunks, up.nchunks, c);
  GTA_CUDA_CHECK_LAUNCH();
}

double grad_sum_squares(const std::vector<GradRef>& grads) {
  for (const GradRef& g : grads) check_dtype(g.dtype, "grad norm");
  Upload<Desc<GradRef>> up(describe(grads), grad_numel);
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
  Upload<Desc<GradRef>> up(describe(grads), grad_numel);
  if (up.nchunks == 0) return;
  scale_kernel<<<up.grid(), kThreads, 0, cuda::current_stream()>>>(up.descs, up.chunks, up.nchunks, factor);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace gta::kernels
