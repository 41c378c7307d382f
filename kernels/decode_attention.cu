// Decode attention (flash-decoding) over a KV cache read in place; the math is in
// decode_attention.h. Two kernels:
//
//  partial: grid (B n_k, splits), one warp per query head of key head kh (a CTA of up to 8
//    warps loops over more). A warp holds its query in shared memory as fp32 and walks its chunk
//    of the context 32 keys at a time. Scores: lane j takes key base + j and reads its row with
//    16-byte loads. Online softmax over the block (fp32): m' = max(m, max_j s_j),
//    l' = l e^(m - m') + sum_j e^(s_j - m'), acc' = acc e^(m - m') + sum_j e^(s_j - m') r_j v_j.
//    Values: the dv / 8 lanes of a subgroup read one value row with 16-byte loads (lane c the
//    8 features 8c..8c+7), P = 32 / (dv / 8) subgroups take every P-th key of the block; the
//    subgroups' accumulators are summed through shared memory at the end. It writes the chunk's
//    unnormalised output acc, its max m and its sum l (fp32).
//  combine: one CTA per (b, query head): M = max_s m_s, L = sum_s l_s e^(m_s - M),
//    out = sum_s acc_s e^(m_s - M) / L, chunks in index order (deterministic).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "core/cuda_context.h"
#include "kernels/decode_attention.h"

namespace gta::kernels {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kMaxWarps = 8;
constexpr int kMaxDv = 256;
constexpr int kMaxDk = 1024;
constexpr int kMinChunk = 64;
constexpr int kMaxChunk = 1024;  // longer contexts take more chunks: more warps in flight per SM

struct Dev {
  int nq, nk, len, dk1, dk2, dv, q_per_v, splits;
  const int* position;  // when set, the context is position[0] + 1 tokens (read when the kernel runs)
  float scale, eps;
  bool rms_key;
  const bf16 *q, *k1, *k2, *v;
  long long k1_bs, k1_ts, k2_bs, k2_ts, v_bs, v_ts;
};

__device__ __forceinline__ void load8(const bf16* p, float (&x)[8]) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 f = __bfloat1622float2(h[k]);
    x[2 * k] = f.x;
    x[2 * k + 1] = f.y;
  }
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// q (fp32, shared) . row (bf16, global) over n features (n a multiple of 8); *ss gets sum row^2.
__device__ __forceinline__ float dot_row(const float* q, const bf16* row, int n, float* ss) {
  float d = 0, s2 = 0;
#pragma unroll 8  // up to 8 row loads in flight per lane
  for (int c = 0; c < n; c += 8) {
    float x[8];
    load8(row + c, x);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      d = fmaf(q[c + e], x[e], d);
      s2 = fmaf(x[e], x[e], s2);
    }
  }
  *ss = s2;
  return d;
}

__global__ void decode_partial_kernel(Dev a, float* work) {
  extern __shared__ float smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
  const int dk = a.dk1 + a.dk2, G = a.nq / a.nk;
  float* qs = smem + warp * (dk + kMaxDv);  // this warp's query, then its reduction area
  float* red = qs + dk;
  const int b = blockIdx.x / a.nk, kh = blockIdx.x % a.nk, split = blockIdx.y;
  const int len = a.position ? a.position[0] + 1 : a.len;
  const int chunk = ((len + a.splits - 1) / a.splits + 31) / 32 * 32;  // decode_attention's chunking
  const int s0 = split * chunk, s1 = min(len, s0 + chunk);
  const bf16* k1 = a.k1 + b * a.k1_bs + static_cast<long long>(kh) * a.dk1;
  const bf16* k2 = a.k2 + b * a.k2_bs;
  const int C = a.dv / 8, P = 32 / C;  // lanes per value row, value rows per pass
  const int sub = lane / C, ch = lane % C;
  const bool active = sub < P;
  for (int hh = warp; hh < G; hh += nwarps) {
    const int i = kh * G + hh;
    const bf16* qrow = a.q + (static_cast<long long>(b) * a.nq + i) * dk;
    for (int d = lane; d < dk; d += 32) qs[d] = __bfloat162float(qrow[d]);
    __syncwarp();
    const bf16* v = a.v + b * a.v_bs + static_cast<long long>(i / a.q_per_v) * a.dv + ch * 8;
    float m = -INFINITY, l = 0, acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int base = s0; base < s1; base += 32) {
      const int u = base + lane;
      float s = -INFINITY, r = 1;
      if (u < s1) {
        float ss;
        float d = dot_row(qs, k1 + u * a.k1_ts, a.dk1, &ss);
        if (a.rms_key) {
          r = rsqrtf(ss / a.dk1 + a.eps);
          d *= r;
        }
        if (a.dk2 > 0) d += dot_row(qs + a.dk1, k2 + u * a.k2_ts, a.dk2, &ss);
        s = d * a.scale;
      }
      const float m_new = fmaxf(m, warp_max(s));  // finite: key `base` is valid
      const float alpha = __expf(m - m_new);
      const float p = u < s1 ? __expf(s - m_new) : 0.f;
      l = l * alpha + warp_sum(p);
      m = m_new;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] *= alpha;
      const float pv = p * r;
      const int n = min(32, s1 - base);
#pragma unroll 4
      for (int j0 = 0; j0 < n; j0 += P) {  // the trip count is the same for every lane
        const int j = j0 + sub;
        const float pj = __shfl_sync(0xffffffffu, pv, j & 31);
        if (active && j < n) {
          float x[8];
          load8(v + (base + j) * a.v_ts, x);
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[e] = fmaf(pj, x[e], acc[e]);
        }
      }
    }
    if (active)
#pragma unroll
      for (int e = 0; e < 8; ++e) red[sub * a.dv + ch * 8 + e] = acc[e];
    __syncwarp();
    float* o = work + ((static_cast<long long>(b) * a.nq + i) * a.splits + split) * (a.dv + 2);
    for (int d = lane; d < a.dv; d += 32) {
      float t = 0;
      for (int g = 0; g < P; ++g) t += red[g * a.dv + d];
      o[d] = t;
    }
    if (lane == 0) {
      o[a.dv] = m;
      o[a.dv + 1] = l;
    }
    __syncwarp();  // the warp's next head reuses qs and red
  }
}

__global__ void decode_combine_kernel(int splits, int dv, const float* work, bf16* out) {
  const long long row = blockIdx.x;
  const float* w = work + row * splits * (dv + 2);
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, w[s * (dv + 2) + dv]);
  float L = 0;
  for (int s = 0; s < splits; ++s) {
    const float ms = w[s * (dv + 2) + dv];
    if (ms != -INFINITY) L += w[s * (dv + 2) + dv + 1] * __expf(ms - M);
  }
  for (int d = threadIdx.x; d < dv; d += blockDim.x) {
    float t = 0;
    for (int s = 0; s < splits; ++s) {
      const float ms = w[s * (dv + 2) + dv];
      if (ms != -INFINITY) t += w[s * (dv + 2) + d] * __expf(ms - M);
    }
    out[row * dv + d] = __float2bfloat16_rn(t / L);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool decode_attention_supported(int64_t nq, int64_t nk, int64_t dk1, int64_t dk2, int64_t dv) {
  return nk > 0 && nq % nk == 0 && nq / nk <= 32 && dk1 > 0 && dk1 % 8 == 0 && dk2 % 8 == 0 &&
         dk1 + dk2 <= kMaxDk && dv > 0 && dv % 8 == 0 && dv <= kMaxDv;
}

int64_t decode_attention_splits(int64_t B, int64_t nk, int64_t len) {
  const int64_t ctas = std::max<int64_t>(1, B * nk);
  const int64_t want = std::max((2 * cuda::sm_count() + ctas - 1) / ctas, (len + kMaxChunk - 1) / kMaxChunk);
  const int64_t most = std::max<int64_t>(1, (len + kMinChunk - 1) / kMinChunk);
  return std::clamp<int64_t>(want, 1, most);
}

size_t decode_attention_workspace_floats(const DecodeAttnArgs& a, int64_t splits) {
  return static_cast<size_t>(a.B * a.nq * splits * (a.dv + 2));
}

void decode_attention(const DecodeAttnArgs& a, int64_t splits, float* work) {
  GTA_CHECK(decode_attention_supported(a.nq, a.nk, a.dk1, a.dk2, a.dv),
            "decode_attention: unsupported sizes n_q {} n_k {} d_k {}+{} dv {}", a.nq, a.nk, a.dk1, a.dk2, a.dv);
  GTA_CHECK(a.len >= 1 && splits >= 1, "decode_attention: len {} and splits {} must be >= 1", a.len, splits);
  GTA_CHECK(a.nq % a.q_per_v == 0, "decode_attention: q_per_v {} must divide n_q {}", a.q_per_v, a.nq);
  const DecodeCacheView* views[] = {&a.k1, &a.k2, &a.v};
  for (const DecodeCacheView* c : views) {
    if (c == &a.k2 && a.dk2 == 0) continue;
    GTA_CHECK(aligned16(c->data) && c->batch_stride % 8 == 0 && c->token_stride % 8 == 0,
              "decode_attention: cache rows must be 16-byte aligned");
  }
  // Chunks of ceil(len / splits) keys rounded up to 32, computed in the kernel from the length
  // it reads (trailing chunks may be empty: their sum is 0 and the combine skips them).
  Dev d{static_cast<int>(a.nq), static_cast<int>(a.nk), static_cast<int>(a.len), static_cast<int>(a.dk1),
        static_cast<int>(a.dk2), static_cast<int>(a.dv), static_cast<int>(a.q_per_v), static_cast<int>(splits),
        static_cast<const int*>(a.position), a.scale, a.eps, a.rms_key, static_cast<const bf16*>(a.q),
        static_cast<const bf16*>(a.k1.data), static_cast<const bf16*>(a.dk2 > 0 ? a.k2.data : a.k1.data),
        static_cast<const bf16*>(a.v.data), a.k1.batch_stride, a.k1.token_stride, a.k2.batch_stride,
        a.k2.token_stride, a.v.batch_stride, a.v.token_stride};
  const int warps = static_cast<int>(std::min<int64_t>(a.nq / a.nk, kMaxWarps));
  const size_t smem = static_cast<size_t>(warps) * (a.dk1 + a.dk2 + kMaxDv) * sizeof(float);
  cudaStream_t st = cuda::current_stream();
  decode_partial_kernel<<<dim3(static_cast<unsigned>(a.B * a.nk), static_cast<unsigned>(splits)), warps * 32, smem,
                          st>>>(d, work);
  GTA_CUDA_CHECK_LAUNCH();
  decode_combine_kernel<<<static_cast<unsigned>(a.B * a.nq), 128, 0, st>>>(static_cast<int>(splits),
                                                                          static_cast<int>(a.dv), work,
                                                                          static_cast<bf16*>(a.out));
  GTA_CUDA_CHECK_LAUNCH();
}

}  // namespace gta::kernels
