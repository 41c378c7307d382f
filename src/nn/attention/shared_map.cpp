// MHA, GQA, MQA, GVA and GHA: h output heads of width hd = d/h; n_q attention maps (query
// heads), n_k key heads, n_vh value heads. Output head j uses map j/(h/n_q) and value head
// j/(h/n_vh). MHA/GQA/MQA are the case n_q = h; GVA has n_vh = h, GHA n_vh = n_v.
//   q = x Wq [n_q, hd], k = x Wk [n_k, hd], v = x Wv [n_vh, hd]; RoPE(q), RoPE(k)
//   map_i = softmax(q_i k_{i/(n_q/n_k)}^T / sqrt(hd));  y = concat_j(map_{j/(h/n_q)} v_{...}) Wo
// Heads that share a map read one attention pass: when every head of a group reads the same
// value head (n_vh divides n_q) the group's output is computed once and repeated; otherwise the
// group's value heads are folded side by side into one value of width (h/n_q)*hd.
#include <cmath>

#include "nn/attention/attention.h"
#include "nn/layers.h"
#include "ops/decode_position.h"
#include "ops/ops.h"

namespace gta::nn {

namespace {

class SharedMapAttention : public Attention {
 public:
  SharedMapAttention(const config::ModelConfig& cfg, Params& p, const std::string& prefix, double std,
                     double out_std) {
    const auto& a = cfg.attention;
    h_ = cfg.n_heads;
    hd_ = cfg.d_model / cfg.n_heads;
    theta_ = cfg.rope_theta;
    nq_ = cfg.n_q(), nk_ = cfg.n_k(), nv_ = cfg.n_v();  // the table of attention types
    const int64_t d = cfg.d_model;
    q_ = Linear(p, prefix + "q_proj", d, nq_ * hd_, a.qkv_bias, std);
    k_ = Linear(p, prefix + "k_proj", d, nk_ * hd_, a.qkv_bias, std);
    v_ = Linear(p, prefix + "v_proj", d, nv_ * hd_, a.qkv_bias, std);
    o_ = Linear(p, prefix + "o_proj", h_ * hd_, d, false, out_std);
  }

  std::vector<CacheEntry> cache_layout() const override { return {{"k", nk_, hd_}, {"v", nv_, hd_}}; }

  Tensor forward(const Tensor& x, LayerCache* cache, const MapProbe* probe) const override {
    const int64_t B = x.size(0), T = x.size(1), g = h_ / nq_;
    Tensor q = apply_rope(q_(x).reshape({B, T, nq_, hd_}), static_cast<int>(hd_), theta_, cache);
    Tensor k = apply_rope(k_(x).reshape({B, T, nk_, hd_}), static_cast<int>(hd_), theta_, cache);
    Tensor v = v_(x).reshape({B, T, nv_, hd_});
    if (cache && T == 1 && !probe && (nq_ % nv_ == 0 || nv_ % nq_ == 0)) return o_(decode(q, k, v, *cache));
    if (cache) {
      k = cache->append(0, k);
      v = cache->append(1, v);
      cache->commit(T);
    }
    const int64_t S = k.size(1);
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd_));
    if (probe) (*probe)(q, k, scale);
    Tensor o;
    if (nq_ % nv_ == 0) {
      o = ops::attention(q, k, v, scale);  // [B, T, n_q, hd]
      if (g > 1) o = o.reshape({B, T, nq_, 1, hd_}).expand({B, T, nq_, g, hd_});
    } else {
      // Repeat each value head for the output heads that read it, then fold each map's group.
      Tensor per_head = v.reshape({B, S, nv_, 1, hd_}).expand({B, S, nv_, h_ / nv_, hd_});
      o = ops::attention(q, k, per_head.reshape({B, S, nq_, g * hd_}), scale);
    }
    return o_(o.reshape({B, T, h_ * hd_}));
  }

 private:
  // One new token per sequence (q [B, 1, n_q, hd]) against the cache read in place; returns the
  // concatenated output heads [B, 1, h hd]. When n_v divides n_q a map reads one value head and
  // its output repeats for the g = h/n_q heads of its group. When n_q divides n_v (GVA, GHA with
  // more value heads than maps) map i reads the m = n_v/n_q consecutive value heads i m .. i m + m-1,
  // one value of width m hd in the cache's own memory, each head repeated for the r = h/n_v output
  // heads that read it.
  Tensor decode(const Tensor& q, const Tensor& k, const Tensor& v, LayerCache& cache) const {
    const int64_t B = q.size(0), g = h_ / nq_;
    cache.write(0, k);
    cache.write(1, v);
    cache.commit(1);
    const Tensor& vc = cache.buffers[1];
    const int64_t m = nq_ % nv_ == 0 ? 1 : nv_ / nq_;
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd_));
    const Tensor qr = q.reshape({B, nq_, hd_}), values = vc.reshape({B, vc.size(1), nv_ / m, m * hd_});
    Tensor o = cache.position.defined() ? ops::decode_attention_at(qr, cache.buffers[0], values, scale, cache.position)
                                        : ops::decode_attention(qr, cache.buffers[0], values, cache.len, scale);
    return o.reshape({B, 1, nq_, m, 1, hd_}).expand({B, 1, nq_, m, g / m, hd_}).reshape({B, 1, h_ * hd_});
  }

  int64_t h_, hd_, nq_, nk_, nv_;
  double theta_;
  Linear q_, k_, v_, o_;
};

}  // namespace

std::unique_ptr<Attention> make_shared_map_attention(const config::ModelConfig& cfg, Params& p,
                                                     const std::string& prefix, double std, double out_std) {
  return std::make_unique<SharedMapAttention>(cfg, p, prefix, std, out_std);
}

}  // namespace gta::nn
