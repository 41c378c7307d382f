// Elementwise ops and reductions on the GPU (f32, bf16, f64; bf16 values are computed in fp32 and
// rounded to nearest even once per output).
//
//   binary:   out = a + b | a - b | a * b          a, b broadcast through stride-0 dimensions
//   unary:    scale: x * alpha;  sigmoid: s = 1 / (1 + e^-x);  silu: x * s
//   backward: sigmoid: dx = g * y * (1 - y);  silu: dx = g * s * (1 + x (1 - s))
//   swiglu:   out = silu(a) * b;  da = g * b * s * (1 + a (1 - s)),  db = g * silu(a)
//   add_inplace: dst += src;   fill: dst = value (any dtype)
//   sum_middle:  out[p, q] = sum_r x[p, r, q]
//
// Contiguous operands take 16-byte vector loads and stores (Pack, kernels/strided.cuh); strided
// and broadcast operands take one thread per output element, offsets from the merged dimensions.
//
// sum_middle (the backward of broadcasting, sum, mean, bias gradients) is deterministic: rows are
// cut into chunks whose length depends only on the shape; each chunk is summed in a fixed order
// (one warp per row chunk and a shuffle tree when Q == 1; one thread per column and chunk when
// Q > 1) into an fp32 (fp64) partial [P, C, Q], and the partials are reduced by the same routine
// until one chunk remains. No atomics.
#include <algorithm>

#include "core/cuda_context.h"
#include "core/cuda_runtime.h"
#include "kernels/elementwise.h"
#include "kernels/strided.cuh"

namespace gta::kernels {

namespace {

constexpr int kThreads = 256;

// ---- generic contiguous map ------------------------------------------------------------------------

template <typename T, int NIN>
struct Inputs {
  const T* p[NIN];
};

// out[k] = f(in_0[k], ..., in_{NIN-1}[k]) in the accumulation type; out may alias in_0.
template <typename T, int VEC, int NIN, typename F>
__global__ void map_kernel(T* out, Inputs<T, NIN> in, int64_t n, F f) {
  using A = acc_t<T>;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / VEC;
  for (int64_t i = tid; i < nvec; i += step) {
    Pack<T, VEC> v[NIN];
#pragma unroll
    for (int j = 0; j < NIN; ++j) v[j] = reinterpret_cast<const Pack<T, VEC>*>(in.p[j])[i];
    Pack<T, VEC> o;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      A a[NIN];
#pragma unroll
      for (int j = 0; j < NIN; ++j) a[j] = load_acc<T>(v[j].v[k]);
      o.v[k] = store_acc<T>(f(a));
    }
    reinterpret_cast<Pack<T, VEC>*>(out)[i] = o;
  }
  for (int64_t i = nvec * VEC + tid; i < n; i += step) {
    A a[NIN];
#pragma unroll
    for (int j = 0; j < NIN; ++j) a[j] = load_acc<T>(in.p[j][i]);
    out[i] = store_acc<T>(f(a));
  }
}

template <typename T, int NIN, typename F>
void launch_map(T* out, Inputs<T, NIN> in, int64_t n, F f) {
  if (n == 0) return;
  constexpr int VEC = 16 / sizeof(T);
  bool aligned = aligned_to(out, 16);
  for (int j = 0; j < NIN; ++j) aligned = aligned && aligned_to(in.p[j], 16);
  cudaStream_t st = cuda::current_stream();
  if (aligned)
    map_kernel<T, VEC, NIN, F><<<cuda::grid_for((n + VEC - 1) / VEC, kThreads), kThreads, 0, st>>>(out, in, n, f);
  else
    map_kernel<T, 1, NIN, F><<<cuda::grid_for(n, kThreads), kThreads, 0, st>>>(out, in, n, f);
  GTA_CUDA_CHECK_LAUNCH();
}

// ---- functors (arguments in the accumulation type A) -----------------------------------------------

template <typename A>
__device__ __forceinline__ A sigmoid_of(A x) {
  if constexpr (std::is_same_v<A, double>)
    return 1.0 / (1.0 + exp(-x));
  else
    return 1.0f / (1.0f + expf(-x));
}

template <typename A>
__device__ __forceinline__ A apply_binary(BinaryOp op, A x, A y) {
  switch (op) {
    case BinaryOp::add: return x + y;
    case BinaryOp::sub: return x - y;
    case BinaryOp::mul: return x * y;
  }
  return x;
}

template <typename A>
struct BinaryF {
  BinaryOp op;
  __device__ A operator()(const A (&a)[2]) const { return apply_binary(op, a[0], a[1]); }
};

template <typename A>
struct UnaryF {
  UnaryOp op;
  A alpha;
  __device__ A operator()(const A (&a)[1]) const {
    switch (op) {
      case UnaryOp::scale: return a[0] * alpha;
      case UnaryOp::sigmoid: return sigmoid_of(a[0]);
      case UnaryOp::silu: return a[0] * sigmoid_of(a[0]);
    }
    return a[0];
  }
};

template <typename A>
struct SigmoidBackF {  // (g, y)
  __device__ A operator()(const A (&a)[2]) const { return a[0] * a[1] * (A(1) - a[1]); }
};

template <typename A>
struct SiluBackF {  // (g, x)
  __device__ A operator()(const A (&a)[2]) const {
    const A s = sigmoid_of(a[1]);
    return a[0] * s * (A(1) + a[1] * (A(1) - s));
  }
};

template <typename A>
struct SwigluF {  // (a, b)
  __device__ A operator()(const A (&x)[2]) const { return x[0] * sigmoid_of(x[0]) * x[1]; }
};

template <typename A>
struct SwigluBackAF {  // (g, a, b)
  __device__ A operator()(const A (&x)[3]) const {
    const A s = sigmoid_of(x[1]);
    return x[0] * x[2] * s * (A(1) + x[1] * (A(1) - s));
  }
};

template <typename A>
struct SwigluBackBF {  // (g, a)
  __device__ A operator()(const A (&x)[2]) const { return x[0] * x[1] * sigmoid_of(x[1]); }
};

template <typename A>
struct AddF {
  __device__ A operator()(const A (&a)[2]) const { return a[0] + a[1]; }
};

// ---- strided binary ----------------------------------------------------------------------------------

template <typename T, int NDIM, typename Index>
__global__ void binary_strided_kernel(BinaryOp op, T* __restrict__ out, const T* __restrict__ a,
                                      const T* __restrict__ b, OffsetCalc<NDIM, 3, Index> oc, Index n) {
  const Index step = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    Index off[3];
    oc.get(i, off);
    out[i] = store_acc<T>(apply_binary(op, load_acc<T>(a[off[1]]), load_acc<T>(b[off[2]])));
  }
}

// ---- fill -------------------------------------------------------------------------------------------

template <typename T>
__global__ void fill_kernel(T* __restrict__ dst, int64_t n, T value) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) dst[i] = value;
}

template <typename T>
T host_value(double v) {
  if constexpr (std::is_same_v<T, bf16_t>) {
    __nv_bfloat16_raw raw;
    raw.x = gta::bf16(static_cast<float>(v)).bits;  // the CPU's rounding, bit for bit
    return bf16_t(raw);
  } else {
    return static_cast<T>(v);
  }
}

// ---- reductions -------------------------------------------------------------------------------------

// Fixed chunking targets (constants, not the device's SM count, so results are the same bits on
// every card): enough warps / threads to fill a large GPU.
constexpr int64_t kTargetWarps = 8192;
constexpr int64_t kTargetThreads = 262144;
constexpr int64_t kMinRowChunk = 2048;  // elements one warp sums at least (Q == 1)
constexpr int64_t kMinColChunk = 64;    // rows one thread sums at least (Q > 1)

template <typename T, typename O>
using red_acc_t = std::conditional_t<std::is_same_v<T, double> || std::is_same_v<O, double>, double, float>;

template <typename A, typename T>
__device__ __forceinline__ A to_acc(T v) {
  return static_cast<A>(load_acc<T>(v));
}

template <typename O, typename A>
__device__ __forceinline__ O from_acc(A v) {
  if constexpr (std::is_same_v<O, bf16_t>)
    return __float2bfloat16_rn(static_cast<float>(v));
  else
    return static_cast<O>(v);
}

// Q == 1: warp w sums x[p, c*L : min(R, (c+1)*L)] for unit u = p*C + c into out[u].
template <typename T, typename O>
__global__ void sum_rows_kernel(const T* __restrict__ x, O* __restrict__ out, int64_t P, int64_t R, int64_t C,
                                int64_t L) {
  using A = red_acc_t<T, O>;
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; u < P * C; u += warps) {
    const int64_t p = u / C, c = u - p * C;
    const int64_t r0 = c * L, r1 = R < r0 + L ? R : r0 + L;
    const T* row = x + p * R;
    A acc = 0;
    for (int64_t r = r0 + lane; r < r1; r += 32) acc += to_acc<A>(row[r]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) out[u] = from_acc<O>(acc);
  }
}

// Q > 1: thread t = p*Q + q of chunk c = blockIdx.y sums rows c*L .. of column q into out[p, c, q].
template <typename T, typename O>
__global__ void sum_cols_kernel(const T* __restrict__ x, O* __restrict__ out, int64_t P, int64_t R, int64_t Q,
                                int64_t C, int64_t L) {
  using A = red_acc_t<T, O>;
  const int64_t c = blockIdx.y;
  const int64_t r0 = c * L, r1 = R < r0 + L ? R : r0 + L;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < P * Q; t += step) {
    const int64_t p = t / Q, q = t - p * Q;
    const T* base = x + p * R * Q + q;
    A acc = 0;
    for (int64_t r = r0; r < r1; ++r) acc += to_acc<A>(base[r * Q]);
    out[(p * C + c) * Q + q] = from_acc<O>(acc);
  }
}

DType acc_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }


}  // namespace

// ---- launchers ----------------------------------------------------------------------------------------

void binary(BinaryOp op, DType dtype, void* out, const void* a, const int64_t* a_strides, const void* b,
            const int64_t* b_strides, const int64_t* shape, int ndim) {
  int64_t out_strides[64];
  GTA_CHECK(ndim <= 64, "binary: {} dimensions", ndim);
  int64_t acc = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    out_strides[d] = acc;
    acc *= shape[d];
  }
  DimPlan<3> plan;
  GTA_CHECK(plan.build(shape, ndim, {out_strides, a_strides, b_strides}),
            "binary op: more than {} dimensions remain after merging contiguous ones", kMaxDims);
  if (plan.numel == 0) return;
  dispatch_floating("binary op", dtype, [&](auto tag) {
    using T = decltype(tag);
    if (plan.ndim == 1 && plan.strides[1][0] == 1 && plan.strides[2][0] == 1) {
      launch_map<T, 2>(static_cast<T*>(out), {{static_cast<const T*>(a), static_cast<const T*>(b)}}, plan.numel,
                       BinaryF<acc_t<T>>{op});
      return;
    }
    cudaStream_t st = cuda::current_stream();
    with_offset_calc(plan, [&](auto oc, auto index_tag) {
      using Index = decltype(index_tag);
      constexpr int NDIM = decltype(oc)::kNdim;
      binary_strided_kernel<T, NDIM, Index><<<cuda::grid_for(plan.numel, kThreads), kThreads, 0, st>>>(
          op, static_cast<T*>(out), static_cast<const T*>(a), static_cast<const T*>(b), oc,
          static_cast<Index>(plan.numel));
      GTA_CUDA_CHECK_LAUNCH();
    });
  });
}

void unary(UnaryOp op, DType dtype, void* out, const void* x, int64_t n, double alpha) {
  dispatch_floating("unary op", dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    launch_map<T, 1>(static_cast<T*>(out), {{static_cast<const T*>(x)}}, n, UnaryF<A>{op, static_cast<A>(alpha)});
  });
}

void sigmoid_backward(DType dtype, void* dx, const void* g, const void* y, int64_t n) {
  dispatch_floating("sigmoid backward", dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_map<T, 2>(static_cast<T*>(dx), {{static_cast<const T*>(g), static_cast<const T*>(y)}}, n,
                     SigmoidBackF<acc_t<T>>{});
  });
}

void silu_backward(DType dtype, void* dx, const void* g, const void* x, int64_t n) {
  dispatch_floating("silu backward", dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_map<T, 2>(static_cast<T*>(dx), {{static_cast<const T*>(g), static_cast<const T*>(x)}}, n,
                     SiluBackF<acc_t<T>>{});
  });
}

void swiglu(DType dtype, void* out, const void* a, const void* b, int64_t n) {
  dispatch_floating("swiglu", dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_map<T, 2>(static_cast<T*>(out), {{static_cast<const T*>(a), static_cast<const T*>(b)}}, n,
                     SwigluF<acc_t<T>>{});
  });
}

void swiglu_backward(DType dtype, void* da, void* db, const void* g, const void* a, const void* b, int64_t n) {
  dispatch_floating("swiglu backward", dtype, [&](auto tag) {
    using T = decltype(tag);
    const T *pg = static_cast<const T*>(g), *pa = static_cast<const T*>(a), *pb = static_cast<const T*>(b);
    launch_map<T, 3>(static_cast<T*>(da), {{pg, pa, pb}}, n, SwigluBackAF<acc_t<T>>{});
    launch_map<T, 2>(static_cast<T*>(db), {{pg, pa}}, n, SwigluBackBF<acc_t<T>>{});
  });
}

void add_inplace(DType dtype, void* dst, const void* src, int64_t n) {
  dispatch_floating("add_", dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_map<T, 2>(static_cast<T*>(dst), {{static_cast<const T*>(dst), static_cast<const T*>(src)}}, n,
                     AddF<acc_t<T>>{});
  });
}

void fill(DType dtype, void* dst, int64_t n, double value) {
  if (n == 0) return;
  dispatch_any(dtype, [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<cuda::grid_for(n, kThreads), kThreads, 0, cuda::current_stream()>>>(static_cast<T*>(dst), n,
                                                                                          host_value<T>(value));
    GTA_CUDA_CHECK_LAUNCH();
  });
}

void sum_middle(DType in_dtype, const void* x, DType out_dtype, void* out, int64_t P, int64_t R, int64_t Q) {
  GTA_CHECK(out_dtype == in_dtype || out_dtype == acc_dtype(in_dtype) || in_dtype == acc_dtype(out_dtype),
            "sum_middle: {} -> {}", dtype_name(in_dtype), dtype_name(out_dtype));
  if (P * Q == 0) return;
  if (R == 0) {
    fill(out_dtype, out, P * Q, 0.0);
    return;
  }
  // Chunk count C and chunk length L: a function of the shape alone.
  int64_t C;
  if (Q == 1)
    C = std::clamp<int64_t>((kTargetWarps + P - 1) / P, 1, std::max<int64_t>(1, R / kMinRowChunk));
  else
    C = std::clamp<int64_t>((kTargetThreads + P * Q - 1) / (P * Q), 1,
                            std::min<int64_t>(65535, std::max<int64_t>(1, R / kMinColChunk)));
  const int64_t L = (R + C - 1) / C;
  C = (R + L - 1) / L;
  const DType part_dtype = C == 1 ? out_dtype : acc_dtype(in_dtype);
  cuda::DeviceTemp partial(C == 1 ? 0 : P * C * Q * dtype_size(part_dtype));
  void* dst = C == 1 ? out : partial.p;
  cudaStream_t st = cuda::current_stream();
  dispatch_floating("sum", in_dtype, [&](auto itag) {
    using T = decltype(itag);
    dispatch_floating("sum", part_dtype, [&](auto otag) {
      using O = decltype(otag);
      if (Q == 1) {
        const int64_t units = P * C;
        const unsigned grid = static_cast<unsigned>(std::min<int64_t>((units + 7) / 8, 65535LL * 16));
        sum_rows_kernel<T, O><<<grid, kThreads, 0, st>>>(static_cast<const T*>(x), static_cast<O*>(dst), P, R, C, L);
      } else {
        const unsigned gx = static_cast<unsigned>(std::min<int64_t>((P * Q + kThreads - 1) / kThreads, 1 << 20));
        sum_cols_kernel<T, O><<<dim3(gx, static_cast<unsigned>(C)), kThreads, 0, st>>>(
            static_cast<const T*>(x), static_cast<O*>(dst), P, R, Q, C, L);
      }
      GTA_CUDA_CHECK_LAUNCH();
    });
  });
  if (C > 1) sum_middle(part_dtype, partial.p, out_dtype, out, P, C, Q);
}

}  // namespace gta::kernels
