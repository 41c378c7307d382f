// Hopper warpgroup matrix multiply (wgmma, sm_90a) building blocks shared by the flash attention
// kernels of this folder: swizzled shared-memory tiles, their matrix descriptors, the m64n64k16 and
// m64n32k16 products, and the fences that order wgmma's asynchronous register and shared-memory
// accesses.
//
// Tile layouts (1024-byte aligned):
//   wide:   rows of 64 bf16 = 128 bytes, 16-byte chunk c of row r stored at chunk c ^ (r % 8) (the
//           128-byte swizzle, bank-conflict free for both cp.async writes and wgmma reads);
//   narrow: rows of 32 bf16 = 64 bytes, chunk c of row r at chunk c ^ ((r / 2) % 4) (the 64-byte
//           swizzle): columns 64..95 of a 96-wide head (d_v = 96 is one wide + one narrow tile).
// A tile is read by wgmma either K-major (row = an N index, d along K: K for S = Q K^T) or
// MN-major (row = a K index, d along N: V for O += P V).
#pragma once
#include <cstdint>

#include "kernels/flash_ptx.cuh"

namespace gta::kernels::sm90a::wgmma {

using flash::bf16;
using flash::cp_async16;
using flash::ldsm4;
using flash::smem_addr;

// Byte offset of 16-byte chunk c (of 8) of row r in a swizzled tile of 128-byte rows.
__device__ __forceinline__ uint32_t swz(int r, int c) { return r * 128 + ((c ^ (r & 7)) << 4); }

// Byte offset of 16-byte chunk c (of 4) of row r in a narrow tile (64-byte rows, 64-byte swizzle).
__device__ __forceinline__ uint32_t swz64(int r, int c) { return r * 64 + ((c ^ ((r >> 1) & 3)) << 4); }

// ROWS rows of a wide (kRowBytes 128: 64 bf16) or narrow (64: 32 bf16) tile from src (row r at
// src + r * stride elements) into the swizzled tile at dst; rows >= valid zero-filled. A fixed
// count of chunks per thread, each thread always the same chunk column: the loop unrolls and the
// swizzled offsets fold to constants (a data-dependent loop cost hundreds of instructions per tile).
template <int ROWS, int THREADS, int kRowBytes = 128>
__device__ __forceinline__ void load_tile_swz(unsigned char* dst, const bf16* src, int64_t stride, int valid) {
  constexpr int kChunks = kRowBytes / 16;  // per row
  static_assert(kRowBytes == 128 || kRowBytes == 64, "wide or narrow tiles");
  static_assert(ROWS * kChunks % THREADS == 0 && (THREADS / kChunks) % 8 == 0, "whole rounds of 8-row groups");
  const int c = threadIdx.x % kChunks, r0 = threadIdx.x / kChunks;
#pragma unroll
  for (int it = 0; it < ROWS * kChunks / THREADS; ++it) {
    const int r = r0 + it * (THREADS / kChunks);
    const bool ok = r < valid;
    cp_async16(dst + (kRowBytes == 128 ? swz(r, c) : swz64(r, c)), ok ? src + r * stride + c * 8 : src, ok);
  }
}

// The A fragments (m16n8k16 layout, which wgmma's register A operand shares per warp) of this warp's
// 16 rows r0 .. r0 + 15 of a swizzled tile, k = 0 .. 63 in 4 steps of 16.
__device__ __forceinline__ void load_a_frags(uint32_t (&f)[4][4], const unsigned char* tile, int r0) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) ldsm4(f[kk], tile + swz(r0 + lane % 16, 2 * kk + lane / 16));
}

// Same for a narrow tile: k = 0 .. 31 in 2 steps of 16.
__device__ __forceinline__ void load_a_frags_narrow(uint32_t (&f)[2][4], const unsigned char* tile, int r0) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int kk = 0; kk < 2; ++kk) ldsm4(f[kk], tile + swz64(r0 + lane % 16, 2 * kk + lane / 16));
}

// A shared-memory matrix descriptor for the 128-byte swizzle: start address, leading and stride
// byte offsets (16-byte units, 14 bits each), layout 1 = 128-byte swizzle in bits 62-63. The stride
// byte offset is 1024 (8 rows of 128 bytes: the next 8-row group, along M/N for K-major operands
// and along K for MN-major ones). The leading byte offset is unused by K-major swizzled operands
// (encoded 1, as is customary); for the MN-major V, one swizzle atom wide, it is set to 1024 too.
__device__ __forceinline__ uint64_t desc(const unsigned char* p, bool mn_major) {
  const uint64_t a = smem_addr(p);
  constexpr uint64_t kOff = 1024 >> 4;
  const uint64_t lbo = mn_major ? kOff : 1;
  return ((a & 0x3FFFF) >> 4) | (lbo << 16) | (kOff << 32) | (1ull << 62);
}

// The same for a narrow tile: layout 2 = 64-byte swizzle, 8-row groups 512 bytes apart.
__device__ __forceinline__ uint64_t desc_narrow(const unsigned char* p, bool mn_major) {
  const uint64_t a = smem_addr(p);
  constexpr uint64_t kOff = 512 >> 4;
  const uint64_t lbo = mn_major ? kOff : 1;
  return ((a & 0x3FFFF) >> 4) | (lbo << 16) | (kOff << 32) | (2ull << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most N committed wgmma groups are pending (groups complete in commit order).
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Shared-memory writes of the generic proxy (cp.async) made visible to wgmma's async proxy.
__device__ __forceinline__ void fence_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Keeps the compiler from moving accumulator reads or writes across the asynchronous wgmma, and
// (for the register A operand) from reusing its registers before the wgmma reading them is done.
template <int N>
__device__ __forceinline__ void fence_regs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void fence_regs(uint32_t (&r)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(r[i][e])::"memory");
}

// d (64 x 64 fp32, this thread's 32) = (scale_d ? d : 0) + A B: A (64 x 16 bf16) in registers (the
// mma.m16n8k16 A layout per warp), B (16 x 64) from shared memory, K-major ([n][k] rows, as K
// for S = Q K^T) or, with kTransB, MN-major ([k][n] rows, as V for O += P V).
template <int kTransB>
__device__ __forceinline__ void wgmma_m64n64k16_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(scale_d), "n"(kTransB));
}

// d (64 x 32 fp32, this thread's 16) = (scale_d ? d : 0) + A B, A in registers as above, B (16 x 32)
// from shared memory, K-major or (kTransB) MN-major.
template <int kTransB>
__device__ __forceinline__ void wgmma_m64n32k16_rs(float (&d)[16], const uint32_t (&a)[4], uint64_t b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, {%16, %17, %18, %19}, %20, p, 1, 1, %22;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(scale_d), "n"(kTransB));
}

// d (64 x 64 fp32) = (scale_d ? d : 0) + A B with both from shared memory, both K-major.
__device__ __forceinline__ void wgmma_m64n64k16_ss(float (&d)[32], uint64_t a, uint64_t b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(a), "l"(b), "r"(scale_d));
}

// The 64 x 64 products of a warpgroup: acc (= 0 first when !accumulate) += A (registers, 4 k-steps
// of 16) B (a swizzled 64-row tile; K-major: k = d, 32-byte steps; MN-major: k = rows, 16 rows per step).
template <bool kMnMajor>
__device__ __forceinline__ void issue_64x64(float (&acc)[32], const uint32_t (&a)[4][4], const unsigned char* b,
                                            bool accumulate) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
    wgmma_m64n64k16_rs<kMnMajor ? 1 : 0>(acc, a[kk], desc(b + (kMnMajor ? kk * 16 * 128 : kk * 32), kMnMajor),
                                         accumulate || kk > 0);
}

// acc (64 x 64) (= 0 first when !accumulate) += A B over k = 0 .. 95 (d_v = 96): A in registers
// (6 k-steps), B K-major from a wide tile (k 0..63) and a narrow one (k 64..95).
__device__ __forceinline__ void issue_64x64_k96(float (&acc)[32], const uint32_t (&a)[6][4], const unsigned char* b,
                                                const unsigned char* b_narrow, bool accumulate) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) wgmma_m64n64k16_rs<0>(acc, a[kk], desc(b + kk * 32, false), accumulate || kk > 0);
#pragma unroll
  for (int kk = 0; kk < 2; ++kk) wgmma_m64n64k16_rs<0>(acc, a[4 + kk], desc_narrow(b_narrow + kk * 32, false), 1);
}

// acc (64 x 32) += A B: A in registers (4 k-steps), B MN-major from a narrow tile of 64 rows.
__device__ __forceinline__ void issue_64x32_mn(float (&acc)[16], const uint32_t (&a)[4][4], const unsigned char* b) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) wgmma_m64n32k16_rs<1>(acc, a[kk], desc_narrow(b + kk * 16 * 64, true), 1);
}

// The products over a head width W (64, or 96 = a wide and a narrow tile) of the kernels that take
// d_qk and d_v in {64, 96}:
//   issue_k<W>: acc (64 x 64) (= 0 first when !accumulate) += A B over k = 0 .. W - 1, A in
//     registers (W / 16 k-steps), B K-major (the wide tile, then the narrow one for k 64..95);
//   issue_n<W>: acc (64 x W: acc columns 0..63, acc_n 64..95) += A B, A in registers (4 k-steps),
//     B MN-major (64 rows of the wide tile, and of the narrow one).
template <int W>
__device__ __forceinline__ void issue_k(float (&acc)[32], const uint32_t (&a)[W / 16][4], const unsigned char* b,
                                        const unsigned char* b_narrow, bool accumulate) {
  static_assert(W == 64 || W == 96, "head widths 64 and 96");
  if constexpr (W == 96)
    issue_64x64_k96(acc, a, b, b_narrow, accumulate);
  else
    issue_64x64<false>(acc, a, b, accumulate);
}
// issue_k_ss<W>: the same as issue_k with A from shared memory too (rows a .. a + 63, K-major: the
//   wide tile, then the narrow one for k 64..95).
template <int W>
__device__ __forceinline__ void issue_k_ss(float (&acc)[32], const unsigned char* a, const unsigned char* a_narrow,
                                           const unsigned char* b, const unsigned char* b_narrow, bool accumulate) {
  static_assert(W == 64 || W == 96, "head widths 64 and 96");
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
    wgmma_m64n64k16_ss(acc, desc(a + kk * 32, false), desc(b + kk * 32, false), accumulate || kk > 0);
  if constexpr (W == 96) {
#pragma unroll
    for (int kk = 0; kk < 2; ++kk)
      wgmma_m64n64k16_ss(acc, desc_narrow(a_narrow + kk * 32, false), desc_narrow(b_narrow + kk * 32, false), 1);
  }
}
template <int W>
__device__ __forceinline__ void issue_n(float (&acc)[32], float (&acc_n)[W == 96 ? 16 : 1], const uint32_t (&a)[4][4],
                                        const unsigned char* b, const unsigned char* b_narrow) {
  static_assert(W == 64 || W == 96, "head widths 64 and 96");
  issue_64x64<true>(acc, a, b, true);
  if constexpr (W == 96) issue_64x32_mn(acc_n, a, b_narrow);
}

// A warp's 16 rows r0.. of a W-wide head (wide tile, + narrow) as A fragments over k = 0 .. W - 1.
template <int W>
__device__ __forceinline__ void load_a_frags_w(uint32_t (&f)[W / 16][4], const unsigned char* tile,
                                               const unsigned char* narrow, int r0) {
  load_a_frags(*reinterpret_cast<uint32_t(*)[4][4]>(&f[0]), tile, r0);
  if constexpr (W == 96) load_a_frags_narrow(*reinterpret_cast<uint32_t(*)[2][4]>(&f[4]), narrow, r0);
}

// A W-wide head's ROWS rows from src, as load_tile_swz: a wide tile, + a narrow one for W = 96;
// W = 192 is three wide tiles, ROWS * 128 bytes apart from `wide` on (narrow unused).
template <int ROWS, int THREADS, int W>
__device__ __forceinline__ void load_head_swz(unsigned char* wide, unsigned char* narrow, const bf16* src,
                                              int64_t stride, int valid) {
  static_assert(W == 64 || W == 96 || W == 192, "head widths 64, 96 and 192");
#pragma unroll
  for (int i = 0; i < (W == 192 ? 3 : 1); ++i)
    load_tile_swz<ROWS, THREADS>(wide + i * ROWS * 128, src + 64 * i, stride, valid);
  if constexpr (W == 96) load_tile_swz<ROWS, THREADS, 64>(narrow, src + 64, stride, valid);
}

// The software pipeline of the three flash kernels over `steps` tiles streamed through a 4-stage
// cp.async ring (tile n in use, n + 1 resident, n + 2 and n + 3 in flight: loads run two tiles
// ahead). pipeline_prefetch issues tiles 0..2, pipeline_wait_first waits for tile 0 (and every copy
// issued before it); pipeline_run then, per tile n, issues the products that start tile n + 1 (S, dP) together with
// tile n's accumulating products (O += P V; dV, dK; dQ), and runs the elementwise work on tile
// n + 1 while the tensor cores finish tile n. Hooks (lambdas of the kernel):
//   load(n)          issue tile n's copies (the driver commits them)
//   issue_scores(n)  the products that start tile n, into the score registers
//   accumulate(n)    tile n's accumulating products, from its packed operand registers
//   work(n)          fence the score registers, then the elementwise work on tile n
//   fence_acc()      fence_regs of the accumulators
//   release()        once tile n - 1's products are done: fence their operand registers (and
//                    rescale the accumulators, in the forward)
//   pack()           tile n's operands into those registers
// Every warpgroup runs every tile: wgmma on a path ptxas cannot prove uniform over the warpgroup
// is serialized (warning C7520).
template <class Load>
__device__ __forceinline__ void pipeline_prefetch(int steps, Load&& load) {
  load(0);
  flash::cp_commit();
  for (int n = 1; n < 3; ++n) {  // always commit (empty groups past the last tile): one group per tile
    if (n < steps) load(n);
    flash::cp_commit();
  }
}
__device__ __forceinline__ void pipeline_wait_first() {
  flash::cp_wait_group<2>();  // tile 0 and what came before it
  fence_async_smem();         // this thread's copies, visible to wgmma
  __syncthreads();            // everyone's
}

template <class Load, class Scores, class Accumulate, class Work, class FenceAcc, class Release, class Pack>
__device__ __forceinline__ void pipeline_run(int steps, Load&& load, Scores&& issue_scores, Accumulate&& accumulate,
                                             Work&& work, FenceAcc&& fence_acc, Release&& release, Pack&& pack) {
  wgmma_fence();
  issue_scores(0);
  wgmma_commit();
  wgmma_wait<0>();
  work(0);
  pack();
  for (int n = 0; n + 1 < steps; ++n) {
    flash::cp_wait_group<1>();  // tiles up to n + 1 (n + 2 may still be in flight)
    fence_async_smem();
    __syncthreads();  // tile n + 1 resident; every warpgroup done with tile n - 1's stage
    if (n + 3 < steps) load(n + 3);
    flash::cp_commit();
    fence_acc();
    wgmma_fence();
    issue_scores(n + 1);
    wgmma_commit();
    accumulate(n);
    wgmma_commit();
    wgmma_wait<1>();  // the scores of tile n + 1; tile n's products may still run
    work(n + 1);
    wgmma_wait<0>();
    fence_acc();
    release();
    pack();
  }
  // The last tile's products (its copies landed before the last iteration's barrier).
  fence_acc();
  wgmma_fence();
  accumulate(steps - 1);
  wgmma_commit();
  wgmma_wait<0>();
  fence_acc();
}

}  // namespace gta::kernels::sm90a::wgmma
