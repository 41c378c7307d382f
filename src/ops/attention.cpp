// The general causal attention primitive, CPU reference (FlashAttention's math, one query row
// at a time). For batch b, query head i, query t at position p = S - T + t:
//   s_u   = scale * q[b,t,i] . k[b,u,i/(n_q/n_k)]          for u <= p
//   P_u   = exp(s_u - lse),  lse = log sum_u exp(s_u)      (only lse is saved for backward)
//   out   = sum_u P_u v[b,u,i/(n_q/n_v)]
// Backward, recomputing P from lse:
//   dP_u = g . v_u,  D = sum_u P_u dP_u,  dS_u = P_u (dP_u - D)
//   dq += scale dS_u k_u,  dk_u += scale dS_u q,  dv_u += P_u g
// Shared key/value heads receive the sum over the query heads that read them.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

#include "autograd/tape.h"
#include "kernels/attention_problem.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/attention_ref.h"
#include "kernels/flash_attention.h"
#endif

namespace gta::ops {

namespace {

using kernels::AttnDims;

template <typename T>
inline T dot(const T* a, const T* b, int64_t n) {
  T s = 0;
  for (int64_t j = 0; j < n; ++j) s += a[j] * b[j];
  return s;
}

// Multiply-adds of one pass; small problems stay on one thread (starting the team costs more).
inline bool worth_threads(const AttnDims& D) { return D.B * D.nq * D.T * D.S * (D.dqk + D.dv) > (1 << 16); }

template <typename T>
void forward_kernel(const AttnDims& D, T scale, const T* q, const T* k, const T* v, T* out, T* lse) {
#pragma omp parallel if (worth_threads(D))
  {
    std::vector<T> s(static_cast<size_t>(D.S));
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < D.B; ++b)
      for (int64_t i = 0; i < D.nq; ++i)
        for (int64_t t = 0; t < D.T; ++t) {
          const int64_t p = D.S - D.T + t;
          const T* qr = q + D.q_off(b, t, i);
          T mx = -std::numeric_limits<T>::infinity();
          for (int64_t u = 0; u <= p; ++u) {
            s[u] = scale * dot(qr, k + D.k_off(b, u, D.kv_of(i)), D.dqk);
            mx = std::max(mx, s[u]);
          }
          T l = 0;
          T* o = out + D.o_off(b, t, i);
          std::fill_n(o, D.dv, T(0));
          for (int64_t u = 0; u <= p; ++u) {
            const T e = std::exp(s[u] - mx);
            l += e;
            const T* vr = v + D.v_off(b, u, D.v_of(i));
            for (int64_t j = 0; j < D.dv; ++j) o[j] += e * vr[j];
          }
          for (int64_t j = 0; j < D.dv; ++j) o[j] /= l;
          lse[(b * D.nq + i) * D.T + t] = mx + std::log(l);
        }
  }
}

template <typename T>
void backward_kernel(const AttnDims& D, T scale, const T* q, const T* k, const T* v, const T* lse, const T* g, T* dq,
                     T* dk, T* dv) {
  std::fill_n(dk, D.B * D.S * D.nk * D.dqk, T(0));
  std::fill_n(dv, D.B * D.S * D.nv * D.dv, T(0));
  // One batch row per thread: dk/dv of a batch row are written by that thread only, in a fixed
  // order, so the result is deterministic.
#pragma omp parallel if (worth_threads(D))
  {
    std::vector<T> P(static_cast<size_t>(D.S)), dP(static_cast<size_t>(D.S));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < D.B; ++b)
      for (int64_t i = 0; i < D.nq; ++i)
        for (int64_t t = 0; t < D.T; ++t) {
          const int64_t p = D.S - D.T + t;
          const T* qr = q + D.q_off(b, t, i);
          const T* gr = g + D.o_off(b, t, i);
          const T L = lse[(b * D.nq + i) * D.T + t];
          T Dsum = 0;
          for (int64_t u = 0; u <= p; ++u) {
            P[u] = std::exp(scale * dot(qr, k + D.k_off(b, u, D.kv_of(i)), D.dqk) - L);
            dP[u] = dot(gr, v + D.v_off(b, u, D.v_of(i)), D.dv);
            Dsum += P[u] * dP[u];
          }
          T* dqr = dq + D.q_off(b, t, i);
          std::fill_n(dqr, D.dqk, T(0));
          for (int64_t u = 0; u <= p; ++u) {
            const T ds = scale * P[u] * (dP[u] - Dsum);
            const T* kr = k + D.k_off(b, u, D.kv_of(i));
            T* dkr = dk + D.k_off(b, u, D.kv_of(i));
            for (int64_t j = 0; j < D.dqk; ++j) {
              dqr[j] += ds * kr[j];
              dkr[j] += ds * qr[j];
            }
            T* dvr = dv + D.v_off(b, u, D.v_of(i));
            for (int64_t j = 0; j < D.dv; ++j) dvr[j] += P[u] * gr[j];
          }
        }
  }
}

#ifdef GTA_WITH_CUDA
// GPU path: the tensor-core kernels (kernels/flash_attention.cu) for bf16 at the head widths they
// are built for, the reference kernels (kernels/attention_ref.cu: f32/bf16, any widths) otherwise.
// Both save the output and the f32 log-sum-exp [B, n_q, T] (no attention matrix) and recompute P
// in the backward. GTA_ATTENTION=ref forces the reference kernels, so tests and benchmarks can
// compare the two paths in one binary.
bool force_reference() {
  static const bool ref = [] {
    const char* e = std::getenv("GTA_ATTENTION");
    return e && std::string(e) == "ref";
  }();
  return ref;
}

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0; }

Tensor attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, double scale, const AttnDims& a) {
  const Device dev = q.device();
  cuda::DeviceGuard guard(dev.index);
  Tensor qc = q.contiguous().detach(), kc = k.contiguous().detach(), vc = v.contiguous().detach();
  Tensor out = Tensor::empty({a.B, a.T, a.nq, a.dv}, q.dtype(), dev);
  Tensor lse = Tensor::empty({a.B, a.nq, a.T}, DType::f32, dev);
  // flash kernels read 16-byte vectors: views at odd offsets take the reference path
  const bool flash = q.dtype() == DType::bf16 && !force_reference() && kernels::flash_attention_supported(a) &&
                     aligned16(qc) && aligned16(kc) && aligned16(vc);
  if (flash)
    kernels::flash_attention_forward(a, static_cast<float>(scale), qc.raw_data(), kc.raw_data(), vc.raw_data(),
                                     out.raw_data(), lse.data<float>());
  else
    kernels::attention_forward(q.dtype(), a, static_cast<float>(scale), qc.raw_data(), kc.raw_data(), vc.raw_data(),
                               out.raw_data(), lse.data<float>());
  if (!autograd::needs_grad({q, k, v})) return out;
  Tensor od = out.detach();
  autograd::record(out, "attention", {q, k, v}, [qc, kc, vc, od, lse, a, scale, dev, flash](const Tensor& g) {
    cuda::DeviceGuard guard(dev.index);
    Tensor gc = g.contiguous();
    Tensor dq = Tensor::empty(qc.shape(), g.dtype(), dev), dk = Tensor::empty(kc.shape(), g.dtype(), dev),
           dv = Tensor::empty(vc.shape(), g.dtype(), dev);
    if (flash && aligned16(gc)) {
      const int64_t bytes = static_cast<int64_t>(kernels::flash_attention_backward_scratch_bytes(a));
      Tensor scratch = Tensor::empty({(bytes + 3) / 4}, DType::f32, dev);
      kernels::flash_attention_backward(a, static_cast<float>(scale), qc.raw_data(), kc.raw_data(), vc.raw_data(),
                                        od.raw_data(), gc.raw_data(), lse.data<float>(), scratch.raw_data(),
                                        dq.raw_data(), dk.raw_data(), dv.raw_data());
    } else {
      Tensor dsum = Tensor::empty({std::max<int64_t>(1, a.B * a.nq * a.T)}, DType::f32, dev);
      kernels::attention_backward(g.dtype(), a, static_cast<float>(scale), qc.raw_data(), kc.raw_data(),
                                  vc.raw_data(), od.raw_data(), gc.raw_data(), lse.data<float>(), dsum.data<float>(),
                                  dq.raw_data(), dk.raw_data(), dv.raw_data());
    }
    return std::vector<Tensor>{dq, dk, dv};
  });
  return out;
}
#endif

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  for (const Tensor* t : {&q, &k, &v}) {
    GTA_CHECK(t->device() == q.device(), "attention: q on {}, {} on {}", q.device().str(), t->str(),
              t->device().str());
    require_same_dtype("attention", q, *t);
    GTA_CHECK(t->ndim() == 4, "attention: expected [B, T, heads, width], got {}", t->str());
  }
  const AttnDims D =
      kernels::attn_dims(q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), v.size(2), q.size(3), v.size(3));
  GTA_CHECK(k.size(0) == D.B && v.size(0) == D.B && v.size(1) == D.S && k.size(3) == D.dqk,
            "attention: q {}, k {}, v {} do not fit together", q.str(), k.str(), v.str());
  GTA_CHECK(D.nk > 0 && D.nv > 0 && D.nq % D.nk == 0 && D.nq % D.nv == 0,
            "attention: key heads ({}) and value heads ({}) must divide query heads ({})", D.nk, D.nv, D.nq);
  GTA_CHECK(D.T <= D.S, "attention: {} queries but only {} keys", D.T, D.S);
#ifdef GTA_WITH_CUDA
  if (q.device().is_cuda()) return attention_cuda(q, k, v, scale, D);
#endif
  require_cpu("attention", q);
  Tensor qc = q.contiguous().detach(), kc = k.contiguous().detach(), vc = v.contiguous().detach();
  Tensor out = Tensor::empty({D.B, D.T, D.nq, D.dv}, q.dtype());
  Tensor lse = Tensor::empty({D.B, D.nq, D.T}, q.dtype());
  dispatch_float("attention", q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    forward_kernel<T>(D, static_cast<T>(scale), qc.data<T>(), kc.data<T>(), vc.data<T>(), out.data<T>(),
                      lse.data<T>());
  });
  autograd::record(out, "attention", {q, k, v}, [qc, kc, vc, lse, D, scale](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dq = Tensor::empty(qc.shape(), g.dtype()), dk = Tensor::empty(kc.shape(), g.dtype()),
           dv = Tensor::empty(vc.shape(), g.dtype());
    dispatch_float("attention_backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      backward_kernel<T>(D, static_cast<T>(scale), qc.data<T>(), kc.data<T>(), vc.data<T>(), lse.data<T>(),
                         gc.data<T>(), dq.data<T>(), dk.data<T>(), dv.data<T>());
    });
    return std::vector<Tensor>{dq, dk, dv};
  });
  return out;
}

}  // namespace gta::ops
