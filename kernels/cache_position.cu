// The device-position helpers of cache_position.h: one thread per element; the position (and the
// ids) are read when the kernel runs, not when it is launched.
#include <cstdint>

#include "core/cuda_context.h"
#include "kernels/cache_position.h"

namespace gta::kernels {

namespace {

template <typename E>
__global__ void write_row_kernel(E* dst, long long batch_stride, long long row, const E* src, long long n,
                                 const int32_t* position) {
  const long long k = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= n) return;
  const long long b = k / row, j = k % row;
  dst[b * batch_stride + static_cast<long long>(position[0]) * row + j] = src[k];
}

template <typename E>
__global__ void gather_kernel(E* out, const E* w, const int32_t* ids, long long n, long long d, long long vocab) {
  const long long k = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= n * d) return;
  const long long r = k / d, j = k % d;
  long long id = ids[r];
  if (id < 0 || id >= vocab) id = 0;
  out[k] = w[id * d + j];
}

template <typename E>
void gather(void* out, const void* w, const int32_t* ids, int64_t n, int64_t d, int64_t vocab) {
  if (n * d == 0) return;
  gather_kernel<E><<<static_cast<unsigned>((n * d + 255) / 256), 256, 0, cuda::current_stream()>>>(
      static_cast<E*>(out), static_cast<const E*>(w), ids, n, d, vocab);
  GTA_CUDA_CHECK_LAUNCH();
}

__global__ void advance_kernel(int32_t* position, int n) { position[0] += n; }

template <typename E>
void write_row(void* dst, int64_t batch_stride, int64_t row, const void* src, int64_t B, const int32_t* position) {
  const int64_t n = B * row;
  if (n == 0) return;
  write_row_kernel<E><<<static_cast<unsigned>((n + 255) / 256), 256, 0, cuda::current_stream()>>>(
      static_cast<E*>(dst), batch_stride, row, static_cast<const E*>(src), n, position);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace

void write_row_at(size_t elem_bytes, void* dst, int64_t batch_stride, int64_t row, const void* src, int64_t B,
                  const int32_t* position) {
  switch (elem_bytes) {
    case 2: return write_row<uint16_t>(dst, batch_stride, row, src, B, position);
    case 4: return write_row<uint32_t>(dst, batch_stride, row, src, B, position);
    case 8: return write_row<uint64_t>(dst, batch_stride, row, src, B, position);
    default: fail("write_row_at: elements of {} bytes are not supported (2, 4, 8)", elem_bytes);
  }
}

void gather_rows(size_t elem_bytes, void* out, const void* w, const int32_t* ids, int64_t n, int64_t d,
                 int64_t vocab) {
  switch (elem_bytes) {
    case 2: return gather<uint16_t>(out, w, ids, n, d, vocab);
    case 4: return gather<uint32_t>(out, w, ids, n, d, vocab);
    default: fail("gather_rows: elements of {} bytes are not supported (2, 4)", elem_bytes);
  }
}

void advance_position(int32_t* position, int n) {
  advance_kernel<<<1, 1, 0, cuda::current_stream()>>>(position, n);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace gta::kernels
