// Multi-head latent attention (DeepSeek-V2 style, no query compression), training form.
//   [q_nope, q_pe] = x Wq                      h heads of d_nope + d_rope
//   [c, k_pe]      = x Wkva                    d_c + d_rope; k_pe is one head shared by all
//   [k_nope, v]    = RMSNorm_kv(c) Wkvb        per head d_nope + d_v
//   q = [q_nope, RoPE(q_pe)],  k = [k_nope, RoPE(k_pe)]
//   o_j = softmax(q_j k_j^T / sqrt(d_nope + d_rope)) v_j ;  y = concat_j(o_j) Wo
// The cache holds c and RoPE(k_pe) (d_c + d_rope per token). Decoding on a GPU in bf16 runs the
// absorbed form (absorbed_decode below); elsewhere it re-expands keys and values from the cached
// latent (the training form).
#include <cmath>

#include "nn/attention/attention.h"
#include "core/error.h"
#include "nn/layers.h"
#include "ops/decode_position.h"
#include "ops/ops.h"

namespace gta::nn {

namespace {

class MultiLatentAttention : public Attention {
 public:
  MultiLatentAttention(const config::ModelConfig& cfg, Params& p, const std::string& prefix, double std,
                       double out_std) {
    const auto& a = cfg.attention;
    const int64_t d = cfg.d_model;
    h_ = cfg.n_heads;
    dc_ = a.d_c, dr_ = a.d_rope, dn_ = a.d_nope, dv_ = a.d_v;
    theta_ = cfg.rope_theta;
    q_ = Linear(p, prefix + "q_proj", d, h_ * (dn_ + dr_), false, std);
    kva_ = Linear(p, prefix + "kv_a_proj_with_mqa", d, dc_ + dr_, false, std);
    kv_norm_ = RMSNorm(p, prefix + "kv_a_layernorm", dc_, cfg.norm_eps);
    kvb_ = Linear(p, prefix + "kv_b_proj", dc_, h_ * (dn_ + dv_), false, std);
    o_ = Linear(p, prefix + "o_proj", h_ * dv_, d, false, out_std);
  }

  std::vector<CacheEntry> cache_layout() const override { return {{"latent", 1, dc_}, {"k_pe", 1, dr_}}; }

  Tensor forward(const Tensor& x, LayerCache* cache, const MapProbe* probe) const override {
    const int64_t B = x.size(0), T = x.size(1);
    Tensor q = q_(x).reshape({B, T, h_, dn_ + dr_});
    Tensor q_pe = apply_rope(q.slice(3, dn_, dn_ + dr_), static_cast<int>(dr_), theta_, cache);
    q = ops::cat({q.slice(3, 0, dn_), q_pe}, 3);
    Tensor ckv = kva_(x);  // [B, T, d_c + d_rope]
    Tensor c = ckv.slice(2, 0, dc_).reshape({B, T, 1, dc_});
    Tensor k_pe = apply_rope(ckv.slice(2, dc_, dc_ + dr_).reshape({B, T, 1, dr_}), static_cast<int>(dr_), theta_,
                             cache);
    if (cache && T == 1 && !probe) {
      cache->write(0, c);
      cache->write(1, k_pe);
      cache->commit(1);
      Tensor q_nope = q.slice(3, 0, dn_).reshape({B, h_, dn_});
      if (ops::decode_latent_attention_supported(q_nope, q_pe.reshape({B, h_, dr_}), cache->buffers[0],
                                                 cache->buffers[1]))
        return o_(absorbed_decode(q_nope, q_pe.reshape({B, h_, dr_}), *cache));
      GTA_CHECK(!cache->position.defined(),
                "MLA decoding at a device position needs the absorbed form's kernels (CUDA, bf16, widths multiples "
                "of 8)");
      c = cache->buffers[0].slice(1, 0, cache->len);
      k_pe = cache->buffers[1].slice(1, 0, cache->len);
    } else if (cache) {
      c = cache->append(0, c);
      k_pe = cache->append(1, k_pe);
      cache->commit(T);
    }
    const int64_t S = c.size(1);
    Tensor kv = kvb_(kv_norm_(c.reshape({B, S, dc_}))).reshape({B, S, h_, dn_ + dv_});
    Tensor k = ops::cat({kv.slice(3, 0, dn_), k_pe.expand({B, S, h_, dr_})}, 3);
    Tensor v = kv.slice(3, dn_, dn_ + dv_);
    const double scale = 1.0 / std::sqrt(static_cast<double>(dn_ + dr_));
    if (probe) (*probe)(q, k, scale);
    Tensor o = ops::attention(q, k, v, scale);
    return o_(o.reshape({B, T, h_ * dv_}));
  }

 private:
  // Decoding in the absorbed form (one token per sequence; q_nope [B, h, d_nope], q_pe [B, h, d_rope]
  // after RoPE; the cache already holds the new token). With n = RMSNorm_kv's weight, r_u its
  // scale of the latent c_u and W_uk_j, W_uv_j head j's rows of Wkvb ([d_nope, d_c], [d_v, d_c]):
  //   q_j . k_nope_j,u = q_j^T W_uk_j (n * r_u c_u) = r_u (n * W_uk_j^T q_j) . c_u
  //   o_j = sum_u p_u W_uv_j (n * r_u c_u) = W_uv_j (n * sum_u p_u r_u c_u)
  // so attention runs over the cached latent and RoPE key themselves (ops::decode_latent_attention)
  // with the query q_lat_j = n * W_uk_j^T q_j, and W_uv_j applies once to each head's output:
  // nothing is decompressed per cached token. Returns the heads' outputs [B, 1, h d_v].
  Tensor absorbed_decode(const Tensor& q_nope, const Tensor& q_pe, const LayerCache& cache) const {
    const int64_t B = q_nope.size(0);
    const Tensor w = kvb_.weight.reshape({h_, dn_ + dv_, dc_});
    const Tensor w_uk = w.slice(1, 0, dn_), w_uv_t = w.slice(1, dn_, dn_ + dv_).transpose(1, 2);
    Tensor q_lat = ops::matmul(q_nope.permute({1, 0, 2}), w_uk).permute({1, 0, 2});  // [B, h, d_c]
    q_lat = ops::mul(q_lat, kv_norm_.weight).contiguous();
    const double scale = 1.0 / std::sqrt(static_cast<double>(dn_ + dr_));
    Tensor o = cache.position.defined()
                   ? ops::decode_latent_attention_at(q_lat, q_pe, cache.buffers[0], cache.buffers[1], scale,
                                                     kv_norm_.eps, cache.position)
                   : ops::decode_latent_attention(q_lat, q_pe, cache.buffers[0], cache.buffers[1], cache.len, scale,
                                                  kv_norm_.eps);
    o = ops::matmul(ops::mul(o, kv_norm_.weight).permute({1, 0, 2}), w_uv_t);  // [h, B, d_v]
    return o.permute({1, 0, 2}).reshape({B, 1, h_ * dv_});
  }

  int64_t h_, dc_, dr_, dn_, dv_;
  double theta_;
  Linear q_, kva_, kvb_, o_;
  RMSNorm kv_norm_;
};

}  // namespace

std::unique_ptr<Attention> make_mla_attention(const config::ModelConfig& cfg, Params& p, const std::string& prefix,
                                              double std, double out_std) {
  return std::make_unique<MultiLatentAttention>(cfg, p, prefix, std, out_std);
}

}  // namespace gta::nn
