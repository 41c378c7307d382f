// A decode step whose position lives in device memory (int32), so that one CUDA-graph capture of
// the step replays at every position (infer/decode_step.h). Plain C++ declarations; the
// launchers run on the current device's stream.
#pragma once
#include <cstddef>
#include <cstdint>

namespace gta::kernels {

// dst[b, *position, :] = src[b, :] for b < B: dst rows of `row` elements (elem_bytes each: 2, 4
// or 8), batch b at dst + b * batch_stride elements; src contiguous [B, row].
void write_row_at(size_t elem_bytes, void* dst, int64_t batch_stride, int64_t row, const void* src, int64_t B,
                  const int32_t* position);

// out[r, :] = w[ids[r], :] for r < n (ids int32, read on the device; an id outside [0, vocab)
// reads row 0); rows of d elements of elem_bytes (2 or 4).
void gather_rows(size_t elem_bytes, void* out, const void* w, const int32_t* ids, int64_t n, int64_t d,
                 int64_t vocab);

// *position += n.
void advance_position(int32_t* position, int n);

}  // namespace gta::kernels
