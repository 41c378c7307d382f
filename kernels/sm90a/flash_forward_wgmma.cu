// Causal flash attention forward with wgmma (see flash_forward_wgmma.h), d_qk = d_v = 64.
//
// Tiling: one CTA per (128 queries, query head, batch), heaviest tiles first; 2 warpgroups of 128
// threads, each owning 64 query rows (wgmma's M). Q (128 x 64) is loaded once; K and V tiles of 128
// keys are double-buffered with cp.async. All three live in shared memory in the layout wgmma
// reads directly: rows of 64 bf16 = 128 bytes, 16-byte chunk c of row r stored at chunk c ^ (r % 8)
// (the 128-byte swizzle), tiles 1024-byte aligned. Per key tile, each warpgroup:
//   S (64 x 128 fp32 accumulators) = Q K^T        4 wgmma m64n128k16, A = Q and B = K from shared
//                                                  memory (K-major: d contiguous)
//   online softmax on S in registers (the same arithmetic as flash_attention.cu's forward: max on
//   the raw scores, 2^(s scale log2e - m) on the special-function unit, O rescaled)
//   O (64 x 64 fp32) += P V                        8 wgmma m64n64k16, A = P in registers (bf16, the
//                                                  accumulator layout converted by to_a_frag), B =
//                                                  V from shared memory (MN-major: [key][d_v] rows)
// wgmma's accumulator layout per warp is mma.m16n8's per 8 columns: thread lane l holds rows
// l/4 and l/4 + 8 of the warp's 16, columns 2 (l % 4) + {0, 1} of every 8.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "core/cuda_context.h"
#include "kernels/flash_ptx.cuh"
#include "kernels/sm90a/flash_forward_wgmma.h"

namespace gta::kernels::sm90a {

namespace {

using namespace flash;
constexpr int kWarpgroups = 2;
constexpr int kThreads = 128 * kWarpgroups;
constexpr int TM = 64 * kWarpgroups;  // queries per CTA
constexpr int KN = 128;               // keys per tile
constexpr int D = 64;                 // d_qk = d_v
constexpr int kTileBytes = 128 * D * 2;  // a 128-row tile: 16 KB
// Q, K[2], V[2], plus 1 KB to align the base to 1024 bytes.
constexpr size_t kSmemBytes = 5 * kTileBytes + 1024;

struct Dims {
  int B, T, S, nq, nk, nv, gk, gv, off;
};

// Byte offset of 16-byte chunk c (of 8) of row r in a swizzled tile of 128-byte rows.
__device__ __forceinline__ uint32_t swz(int r, int c) { return r * 128 + ((c ^ (r & 7)) << 4); }

// ROWS x 64 bf16 from src (row r at src + r * stride elements) into the swizzled tile at dst;
// rows >= valid zero-filled.
template <int ROWS>
__device__ __forceinline__ void load_tile_swz(unsigned char* dst, const bf16* src, int64_t stride, int valid) {
#pragma unroll
  for (int idx = threadIdx.x; idx < ROWS * 8; idx += kThreads) {
    const int r = idx / 8, c = idx % 8;
    const bool ok = r < valid;
    cp_async16(dst + swz(r, c), ok ? src + r * stride + c * 8 : src, ok);
  }
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

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Shared-memory writes of the generic proxy (cp.async) made visible to wgmma's async proxy.
__device__ __forceinline__ void fence_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Keeps the compiler from moving accumulator reads or writes across the asynchronous wgmma.
template <int N>
__device__ __forceinline__ void fence_regs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// d (64 x 128 fp32, this thread's 64) = (scale_d ? d : 0) + A (64 x 16, shared, K-major) B^T (B 128 x 16,
// shared, K-major).
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[64], uint64_t a, uint64_t b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a), "l"(b), "r"(scale_d));
}

// d (64 x 64 fp32, this thread's 32) += A (64 x 16 bf16, registers: the mma.m16n8k16 A layout per warp)
// B (16 x 64, shared, MN-major: [k][n] rows, hence the transpose flag).
__device__ __forceinline__ void wgmma_m64n64k16_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

__global__ void __launch_bounds__(kThreads, 1)
    fwd_wgmma_kernel(Dims d, float sl2, const bf16* __restrict__ q, const bf16* __restrict__ k,
                     const bf16* __restrict__ v, bf16* __restrict__ out, float* __restrict__ lse) {
  extern __shared__ unsigned char smem_raw[];
  unsigned char* base = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
  unsigned char* Qs = base;
  unsigned char* Ks = base + kTileBytes;      // [2]
  unsigned char* Vs = base + 3 * kTileBytes;  // [2]
  const int i = blockIdx.x, b = blockIdx.y;
  const int t0 = (gridDim.z - 1 - blockIdx.z) * TM;  // heaviest tiles first
  const int kh = i / d.gk, vh = i / d.gv;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int64_t kstride = static_cast<int64_t>(d.nk) * D, vstride = static_cast<int64_t>(d.nv) * D;
  const bf16* kb = k + (static_cast<int64_t>(b) * d.S * d.nk + kh) * D;
  const bf16* vb = v + (static_cast<int64_t>(b) * d.S * d.nv + vh) * D;
  const int kend = min(d.S, d.off + t0 + TM);
  const int ntiles = (kend + KN - 1) / KN;

  load_tile_swz<TM>(Qs, q + ((static_cast<int64_t>(b) * d.T + t0) * d.nq + i) * D, static_cast<int64_t>(d.nq) * D,
                    d.T - t0);
  load_tile_swz<KN>(Ks, kb, kstride, d.S);
  load_tile_swz<KN>(Vs, vb, vstride, d.S);
  cp_commit();

  float o[32];
#pragma unroll
  for (int e = 0; e < 32; ++e) o[e] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g, g + 8; m in log2 units
  const int row0 = wg * 64 + warp * 16 + lane / 4;         // this thread's first row in the tile
  const int pos[2] = {d.off + t0 + row0, d.off + t0 + row0 + 8};
  const int wgpos0 = d.off + t0 + wg * 64, wgpos1 = wgpos0 + 63;  // this warpgroup's positions
  const unsigned char* Qw = Qs + wg * 64 * 128;                   // its 64 rows: 8 swizzle atoms

  for (int n = 0; n < ntiles; ++n) {
    const int u0 = n * KN, buf = n & 1;
    cp_wait_all();
    fence_async_smem();  // this thread's copies, visible to wgmma
    __syncthreads();     // everyone's; and every warpgroup is done with the other buffer
    if (n + 1 < ntiles) {
      const int u1 = u0 + KN;
      load_tile_swz<KN>(Ks + (buf ^ 1) * kTileBytes, kb + u1 * kstride, kstride, d.S - u1);
      load_tile_swz<KN>(Vs + (buf ^ 1) * kTileBytes, vb + u1 * vstride, vstride, d.S - u1);
    }
    cp_commit();
    if (u0 > wgpos1) continue;  // uniform over the warpgroup: every key after every row
    const unsigned char* Kt = Ks + buf * kTileBytes;
    const unsigned char* Vt = Vs + buf * kTileBytes;

    float s[64] = {};  // overwritten (scale-d 0 on the first k step), but never read uninitialised
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) wgmma_m64n128k16_ss(s, desc(Qw + kk * 32, false), desc(Kt + kk * 32, false), kk > 0);
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(s);

    // s[4 j + e]: row g + 8 (e / 2), key u0 + 8 j + 2 (lane % 4) + (e & 1)
    if (u0 + KN - 1 > wgpos0) {
#pragma unroll
      for (int j = 0; j < KN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (u0 + j * 8 + 2 * (lane % 4) + (e & 1) > pos[e / 2]) s[4 * j + e] = -INFINITY;
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < KN / 8; ++j) mx = fmaxf(mx, fmaxf(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mnew = fmaxf(m[h], mx * sl2);
      const float mb = mnew == -INFINITY ? 0.f : mnew;
      const float alpha = ex2(m[h] - mb);
      m[h] = mnew;
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < KN / 8; ++j) {
        s[4 * j + 2 * h] = ex2(fmaf(s[4 * j + 2 * h], sl2, -mb));
        s[4 * j + 2 * h + 1] = ex2(fmaf(s[4 * j + 2 * h + 1], sl2, -mb));
        sum += s[4 * j + 2 * h] + s[4 * j + 2 * h + 1];
      }
      l[h] = l[h] * alpha + sum;
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        o[4 * j + 2 * h] *= alpha;
        o[4 * j + 2 * h + 1] *= alpha;
      }
    }
    uint32_t pf[KN / 16][4];
    to_a_frag<KN>(pf, reinterpret_cast<const float(&)[KN / 8][4]>(s));
    fence_regs(o);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < KN / 16; ++kk) wgmma_m64n64k16_rs(o, pf[kk], desc(Vt + kk * 16 * 128, true));
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(o);
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = l[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int t = t0 + row0 + 8 * h;
    if (t >= d.T) continue;
    const float inv = 1.f / sum;
    bf16* orow = out + ((static_cast<int64_t>(b) * d.T + t) * d.nq + i) * D + 2 * (lane % 4);
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
      *reinterpret_cast<uint32_t*>(orow + j * 8) = pack_bf16(o[4 * j + 2 * h] * inv, o[4 * j + 2 * h + 1] * inv);
    if (lane % 4 == 0) lse[(static_cast<int64_t>(b) * d.nq + i) * d.T + t] = m[h] * kLn2 + logf(sum);
  }
}

}  // namespace

bool flash_forward_available(const AttnDims& a) {
  if (a.dqk != 64 || a.dv != 64) return false;
  if (const char* e = std::getenv("GTA_FLASH_WGMMA"); e && std::atoi(e) == 0) return false;
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  return major == 9 && minor == 0;
}

void flash_forward(const AttnDims& a, float scale, const void* q, const void* k, const void* v, void* out,
                   float* lse) {
  const Dims d{static_cast<int>(a.B),  static_cast<int>(a.T),  static_cast<int>(a.S),
               static_cast<int>(a.nq), static_cast<int>(a.nk), static_cast<int>(a.nv),
               static_cast<int>(a.nq / a.nk), static_cast<int>(a.nq / a.nv), static_cast<int>(a.S - a.T)};
  cuda::set_dynamic_smem(fwd_wgmma_kernel, kSmemBytes, "flash attention forward (wgmma)");
  const dim3 grid(static_cast<unsigned>(d.nq), static_cast<unsigned>(d.B), static_cast<unsigned>((d.T + TM - 1) / TM));
  fwd_wgmma_kernel<<<grid, kThreads, kSmemBytes, cuda::current_stream()>>>(
      d, scale * kLog2e, static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
      static_cast<bf16*>(out), lse);
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace gta::kernels::sm90a
