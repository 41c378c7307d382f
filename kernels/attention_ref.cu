// Reference causal attention on CUDA cores (tiled, fp32 arithmetic; the tensor-core kernels come
// later and are tested against this one and the CPU op). For batch b, query head i, query t at
// position p = S - T + t, key head i/(n_q/n_k), value head i/(n_q/n_v):
//   s_u = scale q_t . k_u  (u <= p),   lse_t = log sum_u exp(s_u),   P_u = exp(s_u - lse_t)
//   out_t = sum_u P_u v_u
// Forward (FlashAttention's online softmax): one block per (b, head, tile of BQ queries); K/V tiles
// of BK keys staged in shared memory (fp32); running max m, sum l and the output tile kept in
// shared memory; m_new = max(m, max_u s_u), O = O e^(m - m_new) + sum_u e^(s_u - m_new) v_u.
// Only lse (fp32) is saved.
// Backward, with D_t = dout_t . out_t (== sum_u P_u dP_u):
//   dP_u = dout_t . v_u,   dS_u = P_u (dP_u - D_t)
//   dq_t = scale sum_u dS_u k_u              (kernel per query tile, loops over key tiles)
//   dk_u = scale sum_{i,t} dS_{i,t,u} q_{i,t}  (kernel per key tile, loops over the query heads
//   dv_u = sum_{i,t} P_{i,t,u} dout_{i,t}       sharing that key/value head, then query tiles)
// Every output element is owned by one block and summed in a fixed order: deterministic.
// When key and value heads are shared by the same query heads (n_k == n_v) dk and dv come from
// one pass; otherwise one pass per side (the dk pass recomputes dP with each query head's v).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "core/cuda_context.h"
#include "kernels/row_reduce.cuh"
#include "kernels/attention_ref.h"

namespace gta::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int BQ = 64;   // queries per forward / dq tile
constexpr int BK = 32;   // keys per tile
constexpr int BQK = 32;  // queries per inner tile of the dk/dv kernel

// rows x width tile of src rows (row r at base + r * row_stride) into shared dst[r][pitch], zero
// beyond `valid` rows.
template <typename T>
__device__ void load_tile(float* dst, int pitch, const T* base, long long row_stride, int rows, int valid, int width) {
  for (int idx = threadIdx.x; idx < rows * width; idx += blockDim.x) {
    const int r = idx / width, c = idx % width;
    dst[r * pitch + c] = r < valid ? ld(base + r * row_stride + c) : 0.f;
  }
}

// ---- forward ----------------------------------------------------------------------------------------

template <typename T>
__global__ void __launch_bounds__(kThreads)
    fwd_kernel(AttnDims32 d, float scale, const T* q, const T* k, const T* v, T* out, float* lse) {
  extern __shared__ float sm[];
  const int pq = d.dqk + 1, pv = d.dv + 1;
  float* Qs = sm;                 // [BQ][pq]
  float* Ks = Qs + BQ * pq;       // [BK][pq]
  float* Vs = Ks + BK * pq;       // [BK][pv]
  float* Os = Vs + BK * pv;       // [BQ][dv]
  float* Ss = Os + BQ * d.dv;     // [BQ][BK + 1]
  float* ms = Ss + BQ * (BK + 1); // [BQ]
  float* ls = ms + BQ;            // [BQ]
  float* as = ls + BQ;            // [BQ]
  const int t0 = blockIdx.x * BQ, i = blockIdx.y, b = blockIdx.z;
  const int kh = d.kv_of(i), vh = d.v_of(i);
  const int nrows = min(BQ, d.T - t0);
  const long long qstride = static_cast<long long>(d.nq) * d.dqk;
  load_tile(Qs, pq, q + d.q_off(b, t0, i), qstride, BQ, nrows, d.dqk);
  for (int idx = threadIdx.x; idx < BQ * d.dv; idx += blockDim.x) Os[idx] = 0.f;
  for (int r = threadIdx.x; r < BQ; r += blockDim.x) {
    ms[r] = -INFINITY;
    ls[r] = 0.f;
  }
  const int off = d.S - d.T;
  const int kend = min(d.S, off + t0 + nrows);  // keys [0, kend) are visible to some row
  for (int u0 = 0; u0 < kend; u0 += BK) {
    const int nk = min(BK, d.S - u0);
    __syncthreads();
    load_tile(Ks, pq, k + d.k_off(b, u0, kh), static_cast<long long>(d.nk) * d.dqk, BK, nk, d.dqk);
    load_tile(Vs, pv, v + d.v_off(b, u0, vh), static_cast<long long>(d.nv) * d.dv, BK, nk, d.dv);
    __syncthreads();
    for (int idx = threadIdx.x; idx < BQ * BK; idx += blockDim.x) {
      const int r = idx / BK, j = idx % BK;
      const int u = u0 + j, t = t0 + r;
      float s = -INFINITY;
      if (r < nrows && j < nk && u <= off + t) {
        const float* qr = Qs + r * pq;
        const float* kr = Ks + j * pq;
        float acc = 0.f;
        for (int c = 0; c < d.dqk; ++c) acc = fmaf(qr[c], kr[c], acc);
        s = scale * acc;
      }
      Ss[r * (BK + 1) + j] = s;
    }
    __syncthreads();
    {  // online softmax: 4 threads per row, 8 columns each
      const int r = threadIdx.x / 4, sub = threadIdx.x % 4;
      float* sr = Ss + r * (BK + 1);
      float mx = -INFINITY;
      for (int j = sub; j < BK; j += 4) mx = fmaxf(mx, sr[j]);
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_old = ms[r];
      const float m_new = fmaxf(m_old, mx);
      float psum = 0.f;
      for (int j = sub; j < BK; j += 4) {
        const float p = m_new == -INFINITY ? 0.f : __expf(sr[j] - m_new);
        sr[j] = p;
        psum += p;
      }
      psum += __shfl_xor_sync(0xffffffffu, psum, 1);
      psum += __shfl_xor_sync(0xffffffffu, psum, 2);
      __syncwarp();
      if (sub == 0) {
        const float alpha = m_old == -INFINITY ? 0.f : __expf(m_old - m_new);
        as[r] = alpha;
        ls[r] = ls[r] * alpha + psum;
        ms[r] = m_new;
      }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < BQ * d.dv; idx += blockDim.x) {
      const int r = idx / d.dv, c = idx % d.dv;
      const float* pr = Ss + r * (BK + 1);
      float acc = Os[idx] * as[r];
      for (int j = 0; j < nk; ++j) acc = fmaf(pr[j], Vs[j * pv + c], acc);
      Os[idx] = acc;
    }
  }
  __syncthreads();
  const long long ostride = static_cast<long long>(d.nq) * d.dv;
  T* ob = out + d.o_off(b, t0, i);
  for (int idx = threadIdx.x; idx < nrows * d.dv; idx += blockDim.x) {
    const int r = idx / d.dv, c = idx % d.dv;
    st(ob + r * ostride + c, Os[idx] / ls[r]);
  }
  for (int r = threadIdx.x; r < nrows; r += blockDim.x) lse[d.row(b, i, t0 + r)] = ms[r] + logf(ls[r]);
}

// ---- backward ---------------------------------------------------------------------------------------

// dsum[b, i, t] = dout . out (one warp per row).
template <typename T>
__global__ void dsum_kernel(AttnDims32 d, const T* out, const T* dout, float* dsum) {
  const long long rows = static_cast<long long>(d.B) * d.T * d.nq;  // in [B, T, nq] order
  const long long w = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (w >= rows) return;
  const T* o = out + w * d.dv;
  const T* g = dout + w * d.dv;
  float acc = 0.f;
  for (int c = lane; c < d.dv; c += 32) acc = fmaf(ld(o + c), ld(g + c), acc);
  for (int s = 16; s > 0; s /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, s);
  if (lane == 0) {
    const int i = static_cast<int>(w % d.nq);
    const long long bt = w / d.nq;
    const int t = static_cast<int>(bt % d.T), b = static_cast<int>(bt / d.T);
    dsum[d.row(b, i, t)] = acc;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) dq_kernel(AttnDims32 d, float scale, const T* q, const T* k, const T* v,
                                                      const T* dout, const float* lse, const float* dsum, T* dq) {
  extern __shared__ float sm[];
  const int pq = d.dqk + 1, pv = d.dv + 1;
  float* Qs = sm;                  // [BQ][pq]
  float* Gs = Qs + BQ * pq;        // [BQ][pv]   dout
  float* Ks = Gs + BQ * pv;        // [BK][pq]
  float* Vs = Ks + BK * pq;        // [BK][pv]
  float* dQs = Vs + BK * pv;       // [BQ][dqk]
  float* Ss = dQs + BQ * d.dqk;    // [BQ][BK + 1]  dS
  float* Ls = Ss + BQ * (BK + 1);  // [BQ]
  float* Ds = Ls + BQ;             // [BQ]
  const int t0 = blockIdx.x * BQ, i = blockIdx.y, b = blockIdx.z;
  const int kh = d.kv_of(i), vh = d.v_of(i);
  const int nrows = min(BQ, d.T - t0);
  load_tile(Qs, pq, q + d.q_off(b, t0, i), static_cast<long long>(d.nq) * d.dqk, BQ, nrows, d.dqk);
  load_tile(Gs, pv, dout + d.o_off(b, t0, i), static_cast<long long>(d.nq) * d.dv, BQ, nrows, d.dv);
  for (int idx = threadIdx.x; idx < BQ * d.dqk; idx += blockDim.x) dQs[idx] = 0.f;
  for (int r = threadIdx.x; r < BQ; r += blockDim.x) {
    Ls[r] = r < nrows ? lse[d.row(b, i, t0 + r)] : 0.f;
    Ds[r] = r < nrows ? dsum[d.row(b, i, t0 + r)] : 0.f;
  }
  const int off = d.S - d.T;
  const int kend = min(d.S, off + t0 + nrows);
  for (int u0 = 0; u0 < kend; u0 += BK) {
    const int nk = min(BK, d.S - u0);
    __syncthreads();
    load_tile(Ks, pq, k + d.k_off(b, u0, kh), static_cast<long long>(d.nk) * d.dqk, BK, nk, d.dqk);
    load_tile(Vs, pv, v + d.v_off(b, u0, vh), static_cast<long long>(d.nv) * d.dv, BK, nk, d.dv);
    __syncthreads();
    for (int idx = threadIdx.x; idx < BQ * BK; idx += blockDim.x) {
      const int r = idx / BK, j = idx % BK;
      const int u = u0 + j, t = t0 + r;
      float ds = 0.f;
      if (r < nrows && j < nk && u <= off + t) {
        const float *qr = Qs + r * pq, *kr = Ks + j * pq, *gr = Gs + r * pv, *vr = Vs + j * pv;
        float s = 0.f, dp = 0.f;
        for (int c = 0; c < d.dqk; ++c) s = fmaf(qr[c], kr[c], s);
        for (int c = 0; c < d.dv; ++c) dp = fmaf(gr[c], vr[c], dp);
        const float p = __expf(scale * s - Ls[r]);
        ds = p * (dp - Ds[r]);
      }
      Ss[r * (BK + 1) + j] = ds;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < BQ * d.dqk; idx += blockDim.x) {
      const int r = idx / d.dqk, c = idx % d.dqk;
      const float* sr = Ss + r * (BK + 1);
      float acc = 0.f;
      for (int j = 0; j < nk; ++j) acc = fmaf(sr[j], Ks[j * pq + c], acc);
      dQs[idx] += scale * acc;
    }
  }
  __syncthreads();
  T* base = dq + d.q_off(b, t0, i);
  const long long stride = static_cast<long long>(d.nq) * d.dqk;
  for (int idx = threadIdx.x; idx < nrows * d.dqk; idx += blockDim.x) {
    const int r = idx / d.dqk, c = idx % d.dqk;
    st(base + r * stride + c, dQs[idx]);
  }
}

// One block per (b, head h of the owning side, tile of BK keys). DO_DK: h is a key head, loop over
// the query heads reading it; DO_DV: h is a value head. Both: n_k == n_v, h is both.
template <typename T, bool DO_DK, bool DO_DV>
__global__ void __launch_bounds__(kThreads)
    dkv_kernel(AttnDims32 d, float scale, const T* q, const T* k, const T* v, const T* dout, const float* lse,
               const float* dsum, T* dk, T* dv) {
  extern __shared__ float sm[];
  const int pq = d.dqk + 1, pv = d.dv + 1;
  float* Ks = sm;                    // [BK][pq]
  float* Vs = Ks + BK * pq;          // [BK][pv]
  float* Qs = Vs + BK * pv;          // [BQK][pq]
  float* Gs = Qs + BQK * pq;         // [BQK][pv]
  float* dKs = Gs + BQK * pv;        // [BK][dqk]
  float* dVs = dKs + BK * d.dqk;     // [BK][dv]
  float* Ps = dVs + BK * d.dv;       // [BK][BQK + 1]
  float* dSs = Ps + BK * (BQK + 1);  // [BK][BQK + 1]
  float* Ls = dSs + BK * (BQK + 1);  // [BQK]
  float* Ds = Ls + BQK;              // [BQK]
  const int u0 = blockIdx.x * BK, h = blockIdx.y, b = blockIdx.z;
  const int nk = min(BK, d.S - u0);
  const int group = DO_DK ? d.nq / d.nk : d.nq / d.nv;  // query heads per owned head
  for (int idx = threadIdx.x; idx < BK * d.dqk; idx += blockDim.x) dKs[idx] = 0.f;
  for (int idx = threadIdx.x; idx < BK * d.dv; idx += blockDim.x) dVs[idx] = 0.f;
  const int off = d.S - d.T;
  const int tstart = max(0, u0 - off);  // the first query that sees key u0
  int loaded_k = -1, loaded_v = -1;
  for (int i = h * group; i < (h + 1) * group; ++i) {
    const int kh = d.kv_of(i), vh = d.v_of(i);
    __syncthreads();
    if (kh != loaded_k) {
      load_tile(Ks, pq, k + d.k_off(b, u0, kh), static_cast<long long>(d.nk) * d.dqk, BK, nk, d.dqk);
      loaded_k = kh;
    }
    if (DO_DK && vh != loaded_v) {
      load_tile(Vs, pv, v + d.v_off(b, u0, vh), static_cast<long long>(d.nv) * d.dv, BK, nk, d.dv);
      loaded_v = vh;
    }
    for (int t0 = tstart; t0 < d.T; t0 += BQK) {
      const int nrows = min(BQK, d.T - t0);
      __syncthreads();
      load_tile(Qs, pq, q + d.q_off(b, t0, i), static_cast<long long>(d.nq) * d.dqk, BQK, nrows, d.dqk);
      load_tile(Gs, pv, dout + d.o_off(b, t0, i), static_cast<long long>(d.nq) * d.dv, BQK, nrows, d.dv);
      for (int r = threadIdx.x; r < BQK; r += blockDim.x) {
        Ls[r] = r < nrows ? lse[d.row(b, i, t0 + r)] : 0.f;
        Ds[r] = r < nrows ? dsum[d.row(b, i, t0 + r)] : 0.f;
      }
      __syncthreads();
      for (int idx = threadIdx.x; idx < BK * BQK; idx += blockDim.x) {
        const int j = idx / BQK, r = idx % BQK;
        const int u = u0 + j, t = t0 + r;
        float p = 0.f, ds = 0.f;
        if (r < nrows && j < nk && u <= off + t) {
          const float *qr = Qs + r * pq, *kr = Ks + j * pq;
          float s = 0.f;
          for (int c = 0; c < d.dqk; ++c) s = fmaf(qr[c], kr[c], s);
          p = __expf(scale * s - Ls[r]);
          if (DO_DK) {
            const float *gr = Gs + r * pv, *vr = Vs + j * pv;
            float dp = 0.f;
            for (int c = 0; c < d.dv; ++c) dp = fmaf(gr[c], vr[c], dp);
            ds = p * (dp - Ds[r]);
          }
        }
        Ps[j * (BQK + 1) + r] = p;
        dSs[j * (BQK + 1) + r] = ds;
      }
      __syncthreads();
      if (DO_DV) {
        for (int idx = threadIdx.x; idx < BK * d.dv; idx += blockDim.x) {
          const int j = idx / d.dv, c = idx % d.dv;
          const float* pr = Ps + j * (BQK + 1);
          float acc = 0.f;
          for (int r = 0; r < nrows; ++r) acc = fmaf(pr[r], Gs[r * pv + c], acc);
          dVs[idx] += acc;
        }
      }
      if (DO_DK) {
        for (int idx = threadIdx.x; idx < BK * d.dqk; idx += blockDim.x) {
          const int j = idx / d.dqk, c = idx % d.dqk;
          const float* sr = dSs + j * (BQK + 1);
          float acc = 0.f;
          for (int r = 0; r < nrows; ++r) acc = fmaf(sr[r], Qs[r * pq + c], acc);
          dKs[idx] += scale * acc;
        }
      }
    }
  }
  __syncthreads();
  if (DO_DK) {
    T* base = dk + d.k_off(b, u0, h);
    const long long stride = static_cast<long long>(d.nk) * d.dqk;
    for (int idx = threadIdx.x; idx < nk * d.dqk; idx += blockDim.x)
      st(base + (idx / d.dqk) * stride + idx % d.dqk, dKs[idx]);
  }
  if (DO_DV) {
    T* base = dv + d.v_off(b, u0, h);
    const long long stride = static_cast<long long>(d.nv) * d.dv;
    for (int idx = threadIdx.x; idx < nk * d.dv; idx += blockDim.x)
      st(base + (idx / d.dv) * stride + idx % d.dv, dVs[idx]);
  }
}

AttnDims32 to_dev(const AttnDims& a) {
  GTA_CHECK(a.B < 65536 && a.nq < 65536 && a.B * a.T * a.nq * std::max(a.dqk, a.dv) < (1ll << 62),
            "attention (CUDA): sizes out of range");
  return narrow(a);
}

template <typename T>
void forward_impl(const AttnDims& a, float scale, const void* q, const void* k, const void* v, void* out, float* lse) {
  const AttnDims32 d = to_dev(a);
  if (a.B == 0 || a.T == 0 || a.nq == 0) return;
  const int pq = d.dqk + 1, pv = d.dv + 1;
  const size_t smem =
      sizeof(float) * (BQ * pq + BK * pq + BK * pv + BQ * d.dv + BQ * (BK + 1) + 3 * BQ);
  cuda::set_dynamic_smem(fwd_kernel<T>, smem, "attention (CUDA)");
  dim3 grid(static_cast<unsigned>((a.T + BQ - 1) / BQ), static_cast<unsigned>(a.nq), static_cast<unsigned>(a.B));
  fwd_kernel<T><<<grid, kThreads, smem, cuda::current_stream()>>>(d, scale, static_cast<const T*>(q),
                                                                  static_cast<const T*>(k),
                                                                  static_cast<const T*>(v), static_cast<T*>(out), lse);
  GTA_CUDA_CHECK_LAUNCH();
}

template <typename T, bool DK, bool DV>
void launch_dkv(const AttnDims32& d, unsigned heads, float scale, const T* q, const T* k, const T* v, const T* dout,
                const float* lse, const float* dsum, T* dk, T* dv) {
  const int pq = d.dqk + 1, pv = d.dv + 1;
  const size_t smem = sizeof(float) * (BK * pq + BK * pv + BQK * pq + BQK * pv + BK * d.dqk + BK * d.dv +
                                       2 * BK * (BQK + 1) + 2 * BQK);
  cuda::set_dynamic_smem(dkv_kernel<T, DK, DV>, smem, "attention (CUDA)");
  dim3 grid(static_cast<unsigned>((d.S + BK - 1) / BK), heads, static_cast<unsigned>(d.B));
  dkv_kernel<T, DK, DV><<<grid, kThreads, smem, cuda::current_stream()>>>(d, scale, q, k, v, dout, lse, dsum, dk, dv);
  GTA_CUDA_CHECK_LAUNCH();
}

template <typename T>
void backward_impl(const AttnDims& a, float scale, const void* qv, const void* kv, const void* vv, const void* outv,
                   const void* doutv, const float* lse, float* dsum, void* dqv, void* dkv, void* dvv) {
  const AttnDims32 d = to_dev(a);
  if (a.B == 0 || a.S == 0 || a.nq == 0) return;
  const T *q = static_cast<const T*>(qv), *k = static_cast<const T*>(kv), *v = static_cast<const T*>(vv);
  const T *out = static_cast<const T*>(outv), *dout = static_cast<const T*>(doutv);
  T *dq = static_cast<T*>(dqv), *dk = static_cast<T*>(dkv), *dv = static_cast<T*>(dvv);
  cudaStream_t stream = cuda::current_stream();
  if (a.T > 0) {
    const long long rows = a.B * a.T * a.nq;
    const unsigned blocks = static_cast<unsigned>((rows * 32 + kThreads - 1) / kThreads);
    dsum_kernel<T><<<blocks, kThreads, 0, stream>>>(d, out, dout, dsum);
    GTA_CUDA_CHECK_LAUNCH();
    const int pq = d.dqk + 1, pv = d.dv + 1;
    const size_t smem =
        sizeof(float) * (BQ * pq + BQ * pv + BK * pq + BK * pv + BQ * d.dqk + BQ * (BK + 1) + 2 * BQ);
    cuda::set_dynamic_smem(dq_kernel<T>, smem, "attention (CUDA)");
    dim3 grid(static_cast<unsigned>((a.T + BQ - 1) / BQ), static_cast<unsigned>(a.nq), static_cast<unsigned>(a.B));
    dq_kernel<T><<<grid, kThreads, smem, stream>>>(d, scale, q, k, v, dout, lse, dsum, dq);
    GTA_CUDA_CHECK_LAUNCH();
  }
  if (a.nk == a.nv) {
    launch_dkv<T, true, true>(d, static_cast<unsigned>(a.nk), scale, q, k, v, dout, lse, dsum, dk, dv);
  } else {
    launch_dkv<T, true, false>(d, static_cast<unsigned>(a.nk), scale, q, k, v, dout, lse, dsum, dk, dv);
    launch_dkv<T, false, true>(d, static_cast<unsigned>(a.nv), scale, q, k, v, dout, lse, dsum, dk, dv);
  }
}

}  // namespace

void attention_forward(DType dtype, const AttnDims& d, float scale, const void* q, const void* k, const void* v,
                       void* out, float* lse) {
  switch (dtype) {
    case DType::f32: return forward_impl<float>(d, scale, q, k, v, out, lse);
    case DType::bf16: return forward_impl<__nv_bfloat16>(d, scale, q, k, v, out, lse);
    default: fail("attention (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

void attention_backward(DType dtype, const AttnDims& d, float scale, const void* q, const void* k, const void* v,
                        const void* out, const void* dout, const float* lse, float* dsum, void* dq, void* dk,
                        void* dv) {
  switch (dtype) {
    case DType::f32: return backward_impl<float>(d, scale, q, k, v, out, dout, lse, dsum, dq, dk, dv);
    case DType::bf16: return backward_impl<__nv_bfloat16>(d, scale, q, k, v, out, dout, lse, dsum, dq, dk, dv);
    default: fail("attention backward (CUDA): dtype {} is not supported (f32, bf16)", dtype_name(dtype));
  }
}

}  // namespace gta::kernels
