// Embedding gather and its deterministic backward (CUDA). Plain C++ declarations, no CUDA types.
// dtypes f32 and bf16 (fp32 accumulation); launchers run on the current device's stream.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace gta::kernels {

// out[r, :] = w[ids[r], :] for r < n; ids are i32 or i64 (ids_i64), already range-checked.
void embedding_forward(DType dtype, void* out, const void* w, const void* ids, bool ids_i64, int64_t n, int64_t d);

// For each distinct id: dw[rows[u], :] = sum over k in [offsets[u], offsets[u+1]) of g[perm[k], :],
// summed in k order (perm lists the token positions of each id in increasing order: a stable
// counting sort built on the host). Rows of dw not listed are left as they are (zero them first).
void embedding_backward(DType dtype, void* dw, const void* g, const int64_t* rows, const int64_t* offsets,
                        const int64_t* perm, int64_t n_rows, int64_t d);

}  // namespace gta::kernels
