// Grouped-head latent attention (GTA), as in the paper's public release. n_q maps of width
// d_qk over n_k key heads; values are n_v latent heads c of width d_l; e = d / (n_q d_l).
//   q = x Wq + bq [n_q, d_qk],  k = x Wk + bk [n_k, d_qk],  c = x Wv + bv [n_v, d_l]
//   o_i = softmax(RoPE(q_i) RoPE(k_{i/(n_q/n_k)})^T / sqrt(d_qk)) c_{i/(n_q/n_v)}     [d_l]
//   u_i = tile(o_i, e) + o_i Wb_i        (Wb = v_b_proj memory read as [n_q, d_l, e d_l])
//   y   = (sigmoid(x Wg + bg) * concat_i u_i) Wo
// Attention is linear in c, so the value decoder (Wb, tile, gate) runs after attention on n_q
// outputs of width d_l: the cache holds only k and c, and nothing is decompressed per token.
#include <cmath>

#include "nn/attention/attention.h"
#include "nn/layers.h"
#include "ops/decode_position.h"
#include "ops/gta_value_decode.h"
#include "ops/ops.h"

namespace gta::nn {

namespace {

class GroupedLatentAttention : public Attention {
 public:
  GroupedLatentAttention(const config::ModelConfig& cfg, Params& p, const std::string& prefix, double std,
                         double out_std) {
    const auto& a = cfg.attention;
    d_ = cfg.d_model;
    nq_ = a.n_q_heads, nk_ = a.n_k_heads, nv_ = a.n_v_heads;
    dqk_ = a.d_qk, dl_ = a.d_latent;
    e_ = d_ / (nq_ * dl_);
    theta_ = cfg.rope_theta;
    q_ = Linear(p, prefix + "q_proj", d_, nq_ * dqk_, a.qkv_bias, std);
    k_ = Linear(p, prefix + "k_proj", d_, nk_ * dqk_, a.qkv_bias, std);
    v_ = Linear(p, prefix + "v_proj", d_, nv_ * dl_, a.qkv_bias, std);
    g_ = Linear(p, prefix + "g_proj", d_, d_, true, std);
    wb_ = p.add(prefix + "v_b_proj.weight", {e_ * dl_, nq_ * dl_}, Init::normal, std);
    o_ = Linear(p, prefix + "o_proj", d_, d_, false, out_std);
  }

  std::vector<CacheEntry> cache_layout() const override { return {{"k", nk_, dqk_}, {"latent", nv_, dl_}}; }

  Tensor forward(const Tensor& x, LayerCache* cache, const MapProbe* probe) const override {
    const int64_t B = x.size(0), T = x.size(1), N = B * T;
    Tensor q = apply_rope(q_(x).reshape({B, T, nq_, dqk_}), static_cast<int>(dqk_), theta_, cache);
    Tensor k = apply_rope(k_(x).reshape({B, T, nk_, dqk_}), static_cast<int>(dqk_), theta_, cache);
    Tensor c = v_(x).reshape({B, T, nv_, dl_});
    Tensor g;  // the gate's pre-activation x Wg + bg [B, T, d], computed where it is needed
    const double scale = 1.0 / std::sqrt(static_cast<double>(dqk_));
    Tensor o;  // [B, T, n_q, d_l]
    if (cache && T == 1 && !probe) {
      // Decoding one token: attention reads k and the latent where the cache holds them.
      cache->write(0, k);
      cache->write(1, c);
      cache->commit(1);
      const Tensor qr = q.reshape({B, nq_, dqk_});
      o = cache->position.defined()
              ? ops::decode_attention_at(qr, cache->buffers[0], cache->buffers[1], scale, cache->position)
              : ops::decode_attention(qr, cache->buffers[0], cache->buffers[1], cache->len, scale);
      g = g_(x);
      const Tensor g2 = g.reshape({B, d_});
      if (ops::gta_value_decode_supported(o, wb_, g2))  // the decoder and gate below in one kernel
        return o_(ops::gta_value_decode(o, wb_, g2).reshape({B, 1, d_}));
      o = o.reshape({B, 1, nq_, dl_});
    } else {
      if (cache) {
        k = cache->append(0, k);
        c = cache->append(1, c);
        cache->commit(T);
      }
      if (probe) (*probe)(q, k, scale);
      o = ops::attention(q, k, c, scale);
    }
    // Per-group decoder: [n_q, N, d_l] @ [n_q, d_l, e d_l] -> [N, n_q, e, d_l], plus o tiled e times.
    Tensor ob = o.reshape({N, nq_, dl_}).permute({1, 0, 2});
    Tensor dec = ops::matmul(ob, wb_.reshape({nq_, dl_, e_ * dl_})).permute({1, 0, 2}).reshape({N, nq_, e_, dl_});
    Tensor u = ops::add(dec, o.reshape({N, nq_, 1, dl_})).reshape({B, T, d_});
    return o_(ops::mul(ops::sigmoid(g.defined() ? g : g_(x)), u));
  }

 private:
  int64_t d_, nq_, nk_, nv_, dqk_, dl_, e_;
  double theta_;
  Linear q_, k_, v_, g_, o_;
  Tensor wb_;
};

}  // namespace

std::unique_ptr<Attention> make_gta_attention(const config::ModelConfig& cfg, Params& p, const std::string& prefix,
                                              double std, double out_std) {
  return std::make_unique<GroupedLatentAttention>(cfg, p, prefix, std, out_std);
}

}  // namespace gta::nn
