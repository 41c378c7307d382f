// Device helpers shared by gta's elementwise and copy kernels (private to kernels/*.cu):
//   - element conversions that give the same values as the CPU's from_double(to_double(x))
//     (core/strided.h): f32 <-> bf16 directly (exact / round-to-nearest-even), every pair that
//     involves f64 or an integer through double, as the CPU does;
//   - Pack<T, N>: N elements loaded or stored as one aligned vector (16-byte accesses);
//   - FastDivmod: 32-bit division by a run-time constant as a multiply-high and a shift
//     (q = (umulhi(n, magic) + n) >> shift with magic = floor(2^32 (2^shift - d) / d) + 1 and
//     2^shift >= d > 2^(shift-1); exact for n, d < 2^31);
//   - OffsetCalc<NDIM, NARR, Index>: the element offsets of NARR strided views at a row-major
//     linear index, with the dimensions unrolled at compile time;
//   - DimPlan: the host-side simplification that drops size-1 dimensions and merges dimensions
//     that are contiguous with each other in every view, so most tensors need 1-3 dimensions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "core/error.h"

namespace gta::kernels {

using bf16_t = __nv_bfloat16;

// ---- conversions -----------------------------------------------------------------------------------

template <typename T> __device__ __forceinline__ double to_f64(T v) { return static_cast<double>(v); }
template <> __device__ __forceinline__ double to_f64<bf16_t>(bf16_t v) { return static_cast<double>(__bfloat162float(v)); }

template <typename T> __device__ __forceinline__ T from_f64(double v) { return static_cast<T>(v); }
template <> __device__ __forceinline__ bf16_t from_f64<bf16_t>(double v) {
  return __float2bfloat16_rn(static_cast<float>(v));  // double -> float -> bf16, as on the CPU
}

template <typename D, typename S>
__device__ __forceinline__ D convert(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<D, float> && std::is_same_v<S, bf16_t>) {
    return __bfloat162float(v);
  } else if constexpr (std::is_same_v<D, bf16_t> && std::is_same_v<S, float>) {
    return __float2bfloat16_rn(v);
  } else {
    return from_f64<D>(to_f64<S>(v));
  }
}

// Accumulation type: fp32 for f32 and bf16, fp64 for f64.
template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <typename T> using acc_t = typename AccOf<T>::type;

template <typename T> __device__ __forceinline__ acc_t<T> load_acc(T v) { return static_cast<acc_t<T>>(v); }
template <> __device__ __forceinline__ float load_acc<bf16_t>(bf16_t v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T store_acc(acc_t<T> v) { return static_cast<T>(v); }
template <> __device__ __forceinline__ bf16_t store_acc<bf16_t>(float v) { return __float2bfloat16_rn(v); }

// ---- vector packs ----------------------------------------------------------------------------------

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// ---- index arithmetic ------------------------------------------------------------------------------

struct FastDivmod {
  uint32_t divisor = 1, magic = 1, shift = 0;
  FastDivmod() = default;
  explicit FastDivmod(uint32_t d) : divisor(d) {
    shift = 0;
    while ((uint64_t(1) << shift) < d) ++shift;
    magic = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, magic) + n) >> shift; }
};

constexpr int kMaxDims = 8;

// Offsets of NARR views at a row-major linear index over NDIM dimensions. Index is uint32_t
// (everything below 2^31: fast division) or int64_t.
template <int NDIM, int NARR, typename Index>
struct OffsetCalc {
  static constexpr int kNdim = NDIM;
  using Div = std::conditional_t<std::is_same_v<Index, uint32_t>, FastDivmod, int64_t>;
  Div size[NDIM];
  Index stride[NARR][NDIM];

  __device__ __forceinline__ void get(Index linear, Index (&off)[NARR]) const {
#pragma unroll
    for (int a = 0; a < NARR; ++a) off[a] = 0;
#pragma unroll
    for (int d = NDIM - 1; d >= 1; --d) {
      Index q, idx;
      if constexpr (std::is_same_v<Index, uint32_t>) {
        q = size[d].div(linear);
        idx = linear - q * size[d].divisor;
      } else {
        q = linear / size[d];
        idx = linear - q * size[d];
      }
      linear = q;
#pragma unroll
      for (int a = 0; a < NARR; ++a) off[a] += idx * stride[a][d];
    }
#pragma unroll
    for (int a = 0; a < NARR; ++a) off[a] += linear * stride[a][0];
  }
};

// Shapes and strides of NARR views of one logical shape, simplified for kernel launches.
template <int NARR>
struct DimPlan {
  int ndim = 0;
  int64_t numel = 1;
  int64_t shape[kMaxDims];
  int64_t strides[NARR][kMaxDims];
  bool fits32 = true;  // numel and every offset below 2^31: 32-bit indexing

  // Returns false when more than kMaxDims dimensions remain after merging.
  bool build(const int64_t* shp, int nd, const int64_t* const (&st)[NARR]) {
    GTA_CHECK(nd <= 64, "tensor with {} dimensions", nd);
    int64_t s[64], t[NARR][64];
    int n = 0;
    numel = 1;
    for (int d = 0; d < nd; ++d) numel *= shp[d];
    for (int d = 0; d < nd; ++d) {
      if (shp[d] == 1) continue;
      s[n] = shp[d];
      for (int a = 0; a < NARR; ++a) t[a][n] = st[a][d];
      ++n;
    }
    // Merge dimension i into i+1 when, in every view, stepping i is stepping i+1 size times.
    int m = 0;
    for (int d = 0; d < n; ++d) {
      if (m > 0) {
        bool ok = true;
        for (int a = 0; a < NARR; ++a) ok = ok && t[a][m - 1] == t[a][d] * s[d];
        if (ok) {
          s[m - 1] *= s[d];
          for (int a = 0; a < NARR; ++a) t[a][m - 1] = t[a][d];
          continue;
        }
      }
      s[m] = s[d];
      for (int a = 0; a < NARR; ++a) t[a][m] = t[a][d];
      ++m;
    }
    if (m == 0) {  // a single element
      s[0] = 1;
      for (int a = 0; a < NARR; ++a) t[a][0] = 0;
      m = 1;
    }
    if (m > kMaxDims) return false;
    ndim = m;
    fits32 = numel < (int64_t(1) << 31);
    for (int d = 0; d < m; ++d) {
      shape[d] = s[d];
      for (int a = 0; a < NARR; ++a) strides[a][d] = t[a][d];
    }
    for (int a = 0; a < NARR; ++a) {
      int64_t max_off = 0;
      for (int d = 0; d < m; ++d) {
        if (t[a][d] < 0) fits32 = false;  // never made by gta's views; be safe
        max_off += (s[d] - 1) * (t[a][d] < 0 ? -t[a][d] : t[a][d]);
      }
      if (max_off >= (int64_t(1) << 31)) fits32 = false;
    }
    return true;
  }

  // The OffsetCalc for NDIM >= ndim (extra leading dimensions of size 1).
  template <int NDIM, typename Index>
  OffsetCalc<NDIM, NARR, Index> calc() const {
    OffsetCalc<NDIM, NARR, Index> c;
    const int pad = NDIM - ndim;
    for (int d = 0; d < NDIM; ++d) {
      const int64_t sz = d < pad ? 1 : shape[d - pad];
      if constexpr (std::is_same_v<Index, uint32_t>)
        c.size[d] = FastDivmod(static_cast<uint32_t>(sz));
      else
        c.size[d] = sz;
      for (int a = 0; a < NARR; ++a) c.stride[a][d] = static_cast<Index>(d < pad ? 0 : strides[a][d - pad]);
    }
    return c;
  }
};

// Calls fn(OffsetCalc<NDIM, NARR, Index>{...}, Index{}) with NDIM in {1, 2, 3, 4, 8}.
template <int NARR, typename Fn>
void with_offset_calc(const DimPlan<NARR>& p, Fn&& fn) {
  auto go = [&](auto index_tag) {
    using Index = decltype(index_tag);
    switch (p.ndim) {
      case 1: fn(p.template calc<1, Index>(), Index{}); return;
      case 2: fn(p.template calc<2, Index>(), Index{}); return;
      case 3: fn(p.template calc<3, Index>(), Index{}); return;
      case 4: fn(p.template calc<4, Index>(), Index{}); return;
      default: fn(p.template calc<kMaxDims, Index>(), Index{}); return;
    }
  };
  if (p.fits32)
    go(uint32_t{});
  else
    go(int64_t{});
}

// Calls fn(T{}) with the device type of a floating dtype (f32, bf16, f64).
template <typename Fn>
void dispatch_floating(const char* what, DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: fn(float{}); return;
    case DType::bf16: fn(bf16_t{}); return;
    case DType::f64: fn(double{}); return;
    default: fail("{}: dtype {} is not supported on CUDA (use f32, bf16 or f64)", what, dtype_name(t));
  }
}

// Calls fn(T{}) with the device type of any dtype.
template <typename Fn>
void dispatch_any(DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: fn(float{}); return;
    case DType::bf16: fn(bf16_t{}); return;
    case DType::f64: fn(double{}); return;
    case DType::i32: fn(int32_t{}); return;
    case DType::i64: fn(int64_t{}); return;
    case DType::u16: fn(uint16_t{}); return;
  }
}

}  // namespace gta::kernels
