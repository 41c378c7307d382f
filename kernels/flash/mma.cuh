// The mma.sync building blocks of the flash kernels (forward.cuh, dkv.cuh, dq.cuh): a CTA of 4
// warps, bf16 fragments through ldmatrix, m16n8k16 products with fp32 accumulators, tile loads
// through cp.async, and the causal mask. The tiles live in shared memory row-major, each row
// padded by 16 bytes (pitch P = width + 8 elements) so that ldmatrix is free of bank conflicts.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/flash_ptx.cuh"

namespace gta::kernels::flash {

constexpr int kThreads = 128;  // 4 warps

// ---- PTX wrappers ---------------------------------------------------------------------------------

__device__ __forceinline__ void ldsm4t(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
// c += a (16x16, row) * b (16x8, col)
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Fragment addressing (lane l; tiles in shared memory row-major with pitch P elements):
//  A operand 16x16 at (r0, c0):               row r0 + l%16,                    col c0 + (l/16)*8
//  B operand from an [n][k] tile (X^T), two n8 tiles at (n0, k0): regs {0,1} -> n0..n0+7, {2,3} -> n0+8..
//                                              row n0 + l%8 + (l/16)*8,          col k0 + ((l/8)%2)*8
//  B operand from a [k][n] tile (ldmatrix.trans), two n8 tiles at (k0, n0):
//                                              row k0 + l%8 + ((l/8)%2)*8,       col n0 + (l/16)*8
template <int P>
__device__ __forceinline__ const bf16* a_addr(const bf16* base, int r0, int c0, int lane) {
  return base + (r0 + (lane & 15)) * P + c0 + (lane >> 4) * 8;
}
template <int P>
__device__ __forceinline__ const bf16* bt_addr(const bf16* base, int n0, int k0, int lane) {
  return base + (n0 + (lane & 7) + (lane >> 4) * 8) * P + k0 + ((lane >> 3) & 1) * 8;
}
template <int P>
__device__ __forceinline__ const bf16* bk_addr(const bf16* base, int k0, int n0, int lane) {
  return base + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * P + n0 + (lane >> 4) * 8;
}
// acc[mi] (16 x N, mi < MR) += A rows arow + 16 mi (from shared, K wide) * X^T, X an [N][K] shared
// tile (both non-trans). Every B fragment read from shared memory feeds MR row blocks.
template <int K, int N, int PA, int PX, int MR>
__device__ __forceinline__ void mma_abt(float (&acc)[MR][N / 8][4], const bf16* A, int arow, const bf16* X,
                                        int lane) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t a[MR][4];
#pragma unroll
    for (int mi = 0; mi < MR; ++mi) ldsm4(a[mi], a_addr<PA>(A, arow + mi * 16, kk * 16, lane));
#pragma unroll
    for (int nn = 0; nn < N / 16; ++nn) {
      uint32_t b[4];
      ldsm4(b, bt_addr<PX>(X, nn * 16, kk * 16, lane));
#pragma unroll
      for (int mi = 0; mi < MR; ++mi) {
        mma(acc[mi][2 * nn], a[mi], b[0], b[1]);
        mma(acc[mi][2 * nn + 1], a[mi], b[2], b[3]);
      }
    }
  }
}
// acc[mi] (16 x N) += Pf[mi] (16 x K, bf16 A fragments in registers) * Y, Y a [K][N] shared tile (trans).
template <int K, int N, int PY, int MR>
__device__ __forceinline__ void mma_py(float (&acc)[MR][N / 8][4], const uint32_t (&pf)[MR][K / 16][4],
                                       const bf16* Y, int lane) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
#pragma unroll
    for (int nn = 0; nn < N / 16; ++nn) {
      uint32_t b[4];
      ldsm4t(b, bk_addr<PY>(Y, kk * 16, nn * 16, lane));
#pragma unroll
      for (int mi = 0; mi < MR; ++mi) {
        mma(acc[mi][2 * nn], pf[mi][kk], b[0], b[1]);
        mma(acc[mi][2 * nn + 1], pf[mi][kk], b[2], b[3]);
      }
    }
  }
}

// ROWS x W bf16 tile: row r from src + r * stride (elements) into dst (pitch P); rows >= valid
// zero-filled.
template <int ROWS, int W, int P>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* src, int64_t stride, int valid) {
  constexpr int kChunks = W / 8;  // 16-byte chunks per row
  constexpr int kIters = (ROWS * kChunks + kThreads - 1) / kThreads;
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    const int idx = it * kThreads + static_cast<int>(threadIdx.x);
    if (ROWS * kChunks % kThreads != 0 && idx >= ROWS * kChunks) break;
    const int r = idx / kChunks, c = (idx % kChunks) * 8;
    const bool ok = r < valid;
    cp_async16(dst + r * P + c, ok ? src + r * stride + c : src, ok);
  }
}

template <int N>
__device__ __forceinline__ void zero(float (&a)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) a[j][e] = 0.f;
}

// Causal mask of a warp's probabilities p[mi] (16 x N each; element e of p[mi][j] at tile row r =
// 16 mi + l/4 + 8 (e/2), column c = 8 j + 2 (l%4) + (e&1)): P = 0 where the key is after the
// query. Rows are queries and columns keys (KEY_ROWS false): when c - r > a, a = position of row 0
// - key of column 0. Rows are keys (KEY_ROWS true): when r - c > a, a = position of column 0 - key
// of row 0. Called only for tiles crossing the diagonal: the tiles below it carry no per-element
// compare and select (fused into the exponentials' loop they were ~13% of bwd_kernel's instructions,
// ncu, MHA T 8192).
template <int MR, int N, bool KEY_ROWS>
__device__ __forceinline__ void mask_causal(float (&p)[MR][N / 8][4], int a, int lane) {
#pragma unroll
  for (int mi = 0; mi < MR; ++mi)
#pragma unroll
    for (int j = 0; j < N / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = 16 * mi + lane / 4 + 8 * (e / 2), c = 8 * j + 2 * (lane % 4) + (e & 1);
        if ((KEY_ROWS ? r - c : c - r) > a) p[mi][j][e] = 0.f;
      }
}

}  // namespace gta::kernels::flash
