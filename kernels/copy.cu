// Strided copies and dtype conversions on the GPU.
//
//   copy_strided:       dst[i] = convert(src[i]) for every multi-index i; dst, src any strides
//   convert_contiguous: dst[k] = convert(src[k]) for k < n
//   gather_pieces / scatter_pieces: tensors <-> one flat buffer (gradient buckets), one launch for
//     up to 128 tensors: the table of pointers and cumulative sizes is a kernel argument, and each
//     row of blocks (blockIdx.y) copies one tensor
//
// convert() is the CPU's from_double(to_double(x)) (kernels/strided.cuh). Same-dtype copies move
// element bits (one kernel per element size, 2/4/8 bytes); a contiguous same-dtype copy is one
// cudaMemcpyAsync. A strided copy with a conversion runs as up to three passes over temporaries
// (gather to contiguous, convert, scatter): these are rare (casts of contiguous tensors are the
// hot case, and take the one-pass vectorized kernel).
//
// Costs: each kernel reads every element once and writes it once; the strided kernel's reads or
// writes are coalesced along whichever view is contiguous in the innermost merged dimension.
#include <algorithm>

#include "core/cuda_context.h"
#include "core/cuda_runtime.h"
#include "kernels/copy.h"
#include "kernels/strided.cuh"

namespace gta::kernels {

namespace {

constexpr int kThreads = 256;

template <typename T, int NDIM, typename Index>
__global__ void strided_copy_kernel(T* __restrict__ dst, const T* __restrict__ src, OffsetCalc<NDIM, 2, Index> oc,
                                    Index n) {
  const Index step = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    Index off[2];
    oc.get(i, off);
    dst[off[0]] = src[off[1]];
  }
}

template <typename D, typename S, int VEC>
__global__ void convert_kernel(D* __restrict__ dst, const S* __restrict__ src, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / VEC;
  for (int64_t i = tid; i < nvec; i += step) {
    const Pack<S, VEC> in = reinterpret_cast<const Pack<S, VEC>*>(src)[i];
    Pack<D, VEC> out;
#pragma unroll
    for (int k = 0; k < VEC; ++k) out.v[k] = convert<D, S>(in.v[k]);
    reinterpret_cast<Pack<D, VEC>*>(dst)[i] = out;
  }
  for (int64_t i = nvec * VEC + tid; i < n; i += step) dst[i] = convert<D, S>(src[i]);
}

template <int SIZE> struct Bits;
template <> struct Bits<2> { using type = uint16_t; };
template <> struct Bits<4> { using type = uint32_t; };
template <> struct Bits<8> { using type = uint64_t; };

// Same-dtype strided copy of a planned view pair.
void launch_strided(size_t elem, void* dst, const void* src, const DimPlan<2>& plan) {
  if (plan.numel == 0) return;
  cudaStream_t st = cuda::current_stream();
  auto go = [&](auto bits_tag) {
    using T = decltype(bits_tag);
    with_offset_calc(plan, [&](auto oc, auto index_tag) {
      using Index = decltype(index_tag);
      constexpr int NDIM = decltype(oc)::kNdim;
      strided_copy_kernel<T, NDIM, Index><<<cuda::grid_for(plan.numel, kThreads), kThreads, 0, st>>>(
          static_cast<T*>(dst), static_cast<const T*>(src), oc, static_cast<Index>(plan.numel));
      GTA_CUDA_CHECK_LAUNCH();
    });
  };
  switch (elem) {
    case 2: go(Bits<2>::type{}); break;
    case 4: go(Bits<4>::type{}); break;
    case 8: go(Bits<8>::type{}); break;
    default: fail("copy_strided: element size {}", elem);
  }
}

// The plan with operand `side` (0: dst, 1: src) replaced by a contiguous buffer of the same shape:
// the gather into / scatter out of the temporaries of a strided conversion.
DimPlan<2> with_contiguous_side(const DimPlan<2>& plan, int side) {
  DimPlan<2> p = plan;
  int64_t acc = 1;
  for (int d = plan.ndim - 1; d >= 0; --d) {
    p.strides[side][d] = acc;
    acc *= plan.shape[d];
  }
  return p;
}

bool is_contiguous_plan(const DimPlan<2>& p, int a) { return p.numel <= 1 || (p.ndim == 1 && p.strides[a][0] == 1); }


constexpr int kMaxPieces = 128;

struct PieceTable {
  void* ptr[kMaxPieces];
  int64_t end[kMaxPieces];  // cumulative sizes: piece j holds flat elements [end[j-1], end[j])
  int count;
};

// Piece j (blockIdx.y) moves between its tensor and flat[end[j-1], end[j]) (T: an unsigned type of
// the element's size: a byte copy). 16-byte accesses when both sides are 16-byte aligned, else one
// element at a time.
template <typename T, bool kGather>
__global__ void pieces_kernel(T* __restrict__ flat, PieceTable tab) {
  const int j = static_cast<int>(blockIdx.y);
  const int64_t off = j > 0 ? tab.end[j - 1] : 0, n = tab.end[j] - off;
  T* piece = static_cast<T*>(tab.ptr[j]);
  T* dst = kGather ? flat + off : piece;
  const T* src = kGather ? piece : flat + off;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  constexpr int kVec = 16 / sizeof(T);
  int64_t done = 0;
  if ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) % 16 == 0) {
    const int64_t nv = n / kVec;
    for (int64_t q = first; q < nv; q += step) reinterpret_cast<uint4*>(dst)[q] = reinterpret_cast<const uint4*>(src)[q];
    done = nv * kVec;
  }
  for (int64_t i = done + first; i < n; i += step) dst[i] = src[i];
}

template <bool kGather>
void launch_pieces(DType dtype, void* flat, const std::vector<FlatPiece>& pieces) {
  auto go = [&](auto bits_tag) {
    using T = decltype(bits_tag);
    T* f = static_cast<T*>(flat);
    for (size_t first = 0; first < pieces.size(); first += kMaxPieces) {
      PieceTable tab{};
      int64_t n = 0, largest = 0;
      tab.count = static_cast<int>(std::min<size_t>(kMaxPieces, pieces.size() - first));
      for (int j = 0; j < tab.count; ++j) {
        tab.ptr[j] = pieces[first + j].data;
        tab.end[j] = n += pieces[first + j].n;
        largest = std::max(largest, pieces[first + j].n);
      }
      if (n == 0) continue;
      // Enough blocks per piece for the largest one's 16-byte vectors, at most 64 (then loop).
      const dim3 grid(std::min(64u, cuda::grid_for(largest / (16 / sizeof(T)) + 1, kThreads)),
                      static_cast<unsigned>(tab.count));
      pieces_kernel<T, kGather><<<grid, kThreads, 0, cuda::current_stream()>>>(f, tab);
      GTA_CUDA_CHECK_LAUNCH();
      f += n;
    }
  };
  switch (dtype_size(dtype)) {
    case 2: go(Bits<2>::type{}); break;
    case 4: go(Bits<4>::type{}); break;
    case 8: go(Bits<8>::type{}); break;
    default: fail("gather/scatter of pieces: dtype {}", dtype_name(dtype));
  }
}

}  // namespace

void gather_pieces(DType dtype, void* flat, const std::vector<FlatPiece>& pieces) {
  launch_pieces<true>(dtype, flat, pieces);
}

void scatter_pieces(DType dtype, const void* flat, const std::vector<FlatPiece>& pieces) {
  launch_pieces<false>(dtype, const_cast<void*>(flat), pieces);
}

void convert_contiguous(DType dst_dtype, void* dst, DType src_dtype, const void* src, int64_t n) {
  if (n == 0) return;
  cudaStream_t st = cuda::current_stream();
  if (dst_dtype == src_dtype) {
    GTA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * dtype_size(dst_dtype), cudaMemcpyDeviceToDevice, st));
    return;
  }
  dispatch_any(dst_dtype, [&](auto dtag) {
    using D = decltype(dtag);
    dispatch_any(src_dtype, [&](auto stag) {
      using S = decltype(stag);
      constexpr int VEC = 16 / (sizeof(D) > sizeof(S) ? sizeof(D) : sizeof(S));
      const unsigned grid = cuda::grid_for((n + VEC - 1) / VEC, kThreads);
      if (aligned_to(dst, sizeof(D) * VEC) && aligned_to(src, sizeof(S) * VEC))
        convert_kernel<D, S, VEC><<<grid, kThreads, 0, st>>>(static_cast<D*>(dst), static_cast<const S*>(src), n);
      else
        convert_kernel<D, S, 1><<<cuda::grid_for(n, kThreads), kThreads, 0, st>>>(static_cast<D*>(dst),
                                                                                  static_cast<const S*>(src), n);
      GTA_CUDA_CHECK_LAUNCH();
    });
  });
}

void copy_strided(DType dst_dtype, void* dst, const int64_t* dst_strides, DType src_dtype, const void* src,
                  const int64_t* src_strides, const int64_t* shape, int ndim) {
  DimPlan<2> plan;
  GTA_CHECK(plan.build(shape, ndim, {dst_strides, src_strides}),
            "copy_strided: more than {} dimensions remain after merging contiguous ones", kMaxDims);
  if (plan.numel == 0) return;
  const bool dst_contig = is_contiguous_plan(plan, 0), src_contig = is_contiguous_plan(plan, 1);
  if (dst_dtype == src_dtype) {
    if (dst_contig && src_contig)
      convert_contiguous(dst_dtype, dst, src_dtype, src, plan.numel);
    else
      launch_strided(dtype_size(dst_dtype), dst, src, plan);
    return;
  }
  if (dst_contig && src_contig) {
    convert_contiguous(dst_dtype, dst, src_dtype, src, plan.numel);
    return;
  }
  // Conversion with strides: gather into a contiguous source copy, convert, scatter.
  const int64_t n = plan.numel;
  cuda::DeviceTemp src_tmp(src_contig ? 0 : n * dtype_size(src_dtype));
  cuda::DeviceTemp dst_tmp(dst_contig ? 0 : n * dtype_size(dst_dtype));
  const void* s = src;
  if (!src_contig) {
    launch_strided(dtype_size(src_dtype), src_tmp.p, src, with_contiguous_side(plan, 0));
    s = src_tmp.p;
  }
  void* d = dst_contig ? dst : dst_tmp.p;
  convert_contiguous(dst_dtype, d, src_dtype, s, n);
  if (!dst_contig) {
    launch_strided(dtype_size(dst_dtype), dst, dst_tmp.p, with_contiguous_side(plan, 1));
  }
}

}  // namespace gta::kernels
