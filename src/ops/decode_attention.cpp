// Decode attention over a KV cache read in place (ops.h), and the ops of a decode step whose
// position lives in device memory (decode_position.h). On a GPU in bf16 the flash-decoding
// kernels of kernels/decode_attention.cu read the cache buffers through their strides; every
// other case of decode_attention is the general primitive ops::attention on the cached prefix
// (which copies it), so CPU decoding computes exactly what it computed before this op existed.
#include <algorithm>

#include "core/error.h"
#include "ops/decode_position.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/cache_position.h"
#include "kernels/decode_attention.h"
#endif

namespace gta::ops {

namespace {

void check_cache(const char* op, const Tensor& c, int64_t B, int64_t len) {
  GTA_CHECK(c.ndim() == 4 && c.size(0) == B && c.size(1) >= len,
            "{}: expected a cache [{}, >= {}, heads, width], got {}", op, B, len, c.str());
}

#ifdef GTA_WITH_CUDA
// A cache buffer [B, cap, heads, width] whose rows (heads x width) are contiguous, as the kernel
// reads it; head h of token u of batch b at data + b * batch_stride + u * token_stride + h * width.
bool rows_contiguous(const Tensor& c) { return c.strides()[3] == 1 && c.strides()[2] == c.size(3); }

kernels::DecodeCacheView view_of(const Tensor& c) { return {c.raw_data(), c.strides()[0], c.strides()[1]}; }

// Runs the decode kernels: q [B, n_q, dk1 + dk2] contiguous bf16.
Tensor run_decode_kernels(kernels::DecodeAttnArgs a, const Tensor& q) {
  const Device dev = q.device();
  cuda::DeviceGuard guard(dev.index);
  Tensor out = Tensor::empty({a.B, a.nq, a.dv}, DType::bf16, dev);
  a.q = q.raw_data();
  a.out = out.raw_data();
  const int64_t splits = kernels::decode_attention_splits(a.B, a.nk, a.len);
  Tensor work =
      Tensor::empty({static_cast<int64_t>(kernels::decode_attention_workspace_floats(a, splits))}, DType::f32, dev);
  kernels::decode_attention(a, splits, work.data<float>());
  return out;
}

bool kernel_takes(const Tensor& q, std::initializer_list<const Tensor*> caches) {
  if (!q.device().is_cuda() || q.dtype() != DType::bf16) return false;
  for (const Tensor* c : caches) {
    if (c->dtype() != DType::bf16 || c->device() != q.device() || !rows_contiguous(*c)) return false;
    if (reinterpret_cast<uintptr_t>(c->raw_data()) % 16 != 0 || c->strides()[0] % 8 != 0 || c->strides()[1] % 8 != 0)
      return false;
  }
  return true;
}
#endif

void check_decode_shapes(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t len) {
  GTA_CHECK(q.ndim() == 3, "decode_attention: expected q [B, n_q, d_qk], got {}", q.str());
  GTA_CHECK(len >= 1, "decode_attention: len must be >= 1, got {}", len);
  check_cache("decode_attention", k_cache, q.size(0), len);
  check_cache("decode_attention", v_cache, q.size(0), len);
  GTA_CHECK(k_cache.size(3) == q.size(2) && q.size(1) % k_cache.size(2) == 0 && q.size(1) % v_cache.size(2) == 0,
            "decode_attention: q {} does not fit caches {} and {} (widths equal, head counts dividing n_q)", q.str(),
            k_cache.str(), v_cache.str());
}

#ifdef GTA_WITH_CUDA
// The decode kernels on q [B, n_q, d_qk] and the caches; position: see decode_position.h.
Tensor decode_kernels(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t len, double scale,
                      const Tensor& position) {
  kernels::DecodeAttnArgs a;
  a.B = q.size(0), a.nq = q.size(1), a.nk = k_cache.size(2), a.len = len;
  a.dk1 = q.size(2), a.dv = v_cache.size(3), a.q_per_v = q.size(1) / v_cache.size(2);
  a.scale = static_cast<float>(scale);
  a.k1 = view_of(k_cache);
  a.v = view_of(v_cache);
  if (position.defined()) a.position = position.data<int32_t>();
  return run_decode_kernels(a, q.contiguous());
}
#endif

}  // namespace

Tensor decode_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t len, double scale) {
  check_decode_shapes(q, k_cache, v_cache, len);
#ifdef GTA_WITH_CUDA
  if (decode_attention_at_supported(q, k_cache, v_cache))
    return decode_kernels(q, k_cache, v_cache, len, scale, Tensor());
#endif
  const int64_t B = q.size(0), nq = q.size(1);
  return attention(q.reshape({B, 1, nq, q.size(2)}), k_cache.slice(1, 0, len), v_cache.slice(1, 0, len), scale)
      .reshape({B, nq, v_cache.size(3)});
}

bool decode_attention_at_supported(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache) {
#ifdef GTA_WITH_CUDA
  return q.ndim() == 3 && k_cache.ndim() == 4 && v_cache.ndim() == 4 && kernel_takes(q, {&k_cache, &v_cache}) &&
         kernels::decode_attention_supported(q.size(1), k_cache.size(2), q.size(2), 0, v_cache.size(3));
#else
  return false;
#endif
}

Tensor decode_attention_at(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, double scale,
                           const Tensor& position) {
  check_decode_shapes(q, k_cache, v_cache, k_cache.size(1));
  GTA_CHECK(decode_attention_at_supported(q, k_cache, v_cache),
            "decode_attention_at: the decode kernels do not take q {} with caches {} and {} (CUDA, bf16, widths "
            "multiples of 8)",
            q.str(), k_cache.str(), v_cache.str());
#ifdef GTA_WITH_CUDA
  return decode_kernels(q, k_cache, v_cache, std::min(k_cache.size(1), v_cache.size(1)), scale, position);
#else
  return Tensor();
#endif
}

bool decode_latent_attention_supported(const Tensor& q_lat, const Tensor& q_pe, const Tensor& latent,
                                       const Tensor& k_pe) {
#ifdef GTA_WITH_CUDA
  return q_lat.ndim() == 3 && q_pe.ndim() == 3 && latent.ndim() == 4 && k_pe.ndim() == 4 && latent.size(2) == 1 &&
         k_pe.size(2) == 1 && q_pe.dtype() == DType::bf16 && kernel_takes(q_lat, {&latent, &k_pe}) &&
         kernels::decode_attention_supported(q_lat.size(1), 1, latent.size(3), k_pe.size(3), latent.size(3));
#else
  return false;
#endif
}

namespace {

Tensor latent_kernels(const Tensor& q_lat, const Tensor& q_pe, const Tensor& latent, const Tensor& k_pe, int64_t len,
                      double scale, double eps, const Tensor& position) {
  GTA_CHECK(
      decode_latent_attention_supported(q_lat, q_pe, latent, k_pe),
      "decode_latent_attention: needs the CUDA backend, bf16 and the decode kernels' sizes; got q {} and latent {}",
      q_lat.str(), latent.str());
  const int64_t B = q_lat.size(0), h = q_lat.size(1), dc = latent.size(3), dr = k_pe.size(3);
  GTA_CHECK(len >= 1 && q_lat.size(2) == dc && q_pe.size(0) == B && q_pe.size(1) == h && q_pe.size(2) == dr,
            "decode_latent_attention: q {} and {} do not fit latent {} and k_pe {} (len {})", q_lat.str(), q_pe.str(),
            latent.str(), k_pe.str(), len);
  check_cache("decode_latent_attention", latent, B, len);
  check_cache("decode_latent_attention", k_pe, B, len);
#ifdef GTA_WITH_CUDA
  kernels::DecodeAttnArgs a;
  a.B = B, a.nq = h, a.nk = 1, a.len = len;
  a.dk1 = dc, a.dk2 = dr, a.dv = dc, a.q_per_v = h;
  a.scale = static_cast<float>(scale);
  a.eps = static_cast<float>(eps);
  a.rms_key = true;
  a.k1 = view_of(latent);
  a.k2 = view_of(k_pe);
  a.v = view_of(latent);
  if (position.defined()) a.position = position.data<int32_t>();
  return run_decode_kernels(a, cat({q_lat, q_pe}, 2).contiguous());
#else
  return Tensor();
#endif
}

}  // namespace

Tensor decode_latent_attention(const Tensor& q_lat, const Tensor& q_pe, const Tensor& latent, const Tensor& k_pe,
                               int64_t len, double scale, double eps) {
  return latent_kernels(q_lat, q_pe, latent, k_pe, len, scale, eps, Tensor());
}

Tensor decode_latent_attention_at(const Tensor& q_lat, const Tensor& q_pe, const Tensor& latent, const Tensor& k_pe,
                                  double scale, double eps, const Tensor& position) {
  return latent_kernels(q_lat, q_pe, latent, k_pe, std::min(latent.size(1), k_pe.size(1)), scale, eps, position);
}

namespace {

void check_position(const char* op, const Tensor& position, const Tensor& on) {
  GTA_CHECK(position.defined() && position.dtype() == DType::i32 && position.numel() == 1 &&
                position.device() == on.device() && on.device().is_cuda(),
            "{}: the position must be an i32 [1] on the GPU of {}, got {}", op, on.str(),
            position.defined() ? position.str() : std::string("none"));
}

}  // namespace

void write_row_at(const Tensor& cache, const Tensor& fresh, const Tensor& position) {
  check_position("write_row_at", position, cache);
  GTA_CHECK(cache.ndim() == 4 && fresh.ndim() == 4 && fresh.size(0) == cache.size(0) && fresh.size(1) == 1 &&
                fresh.size(2) == cache.size(2) && fresh.size(3) == cache.size(3) && fresh.dtype() == cache.dtype(),
            "write_row_at: fresh {} is not one row of cache {}", fresh.str(), cache.str());
#ifdef GTA_WITH_CUDA
  GTA_CHECK(rows_contiguous(cache), "write_row_at: the rows of {} must be contiguous", cache.str());
  cuda::DeviceGuard guard(cache.device().index);
  Tensor f = fresh.contiguous();
  kernels::write_row_at(dtype_size(cache.dtype()), cache.raw_data(), cache.strides()[0], cache.size(2) * cache.size(3),
                        f.raw_data(), cache.size(0), position.data<int32_t>());
#endif
}

Tensor embedding_at(const Tensor& weight, const Tensor& ids) {
  GTA_CHECK(
      weight.ndim() == 2 && weight.device().is_cuda() && ids.device() == weight.device() && ids.dtype() == DType::i32,
      "embedding_at: expected a GPU weight [vocab, d] and i32 ids on its device, got {} and {}", weight.str(),
      ids.str());
  Shape shape = ids.shape();
  shape.push_back(weight.size(1));
  Tensor out = Tensor::empty(shape, weight.dtype(), weight.device());
#ifdef GTA_WITH_CUDA
  cuda::DeviceGuard guard(weight.device().index);
  Tensor w = weight.contiguous(), i = ids.contiguous();
  kernels::gather_rows(dtype_size(weight.dtype()), out.raw_data(), w.raw_data(), i.data<int32_t>(), i.numel(),
                       weight.size(1), weight.size(0));
#endif
  return out;
}

void advance_position(const Tensor& position, int n) {
  check_position("advance_position", position, position);
#ifdef GTA_WITH_CUDA
  cuda::DeviceGuard guard(position.device().index);
  kernels::advance_position(position.data<int32_t>(), n);
#endif
}

}  // namespace gta::ops
