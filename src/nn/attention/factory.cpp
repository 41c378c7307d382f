#include "core/error.h"
#include "nn/attention/attention.h"
#include "ops/ops.h"

namespace gta::nn {

std::unique_ptr<Attention> make_shared_map_attention(const config::ModelConfig&, Params&, const std::string&, double,
                                                     double);
std::unique_ptr<Attention> make_gta_attention(const config::ModelConfig&, Params&, const std::string&, double, double);
std::unique_ptr<Attention> make_mla_attention(const config::ModelConfig&, Params&, const std::string&, double, double);

std::unique_ptr<Attention> make_attention(const config::ModelConfig& cfg, Params& p, const std::string& prefix,
                                          double std, double out_std) {
  const std::string& t = cfg.attention.type;
  if (t == "mha" || t == "gqa" || t == "mqa" || t == "gva" || t == "gha")
    return make_shared_map_attention(cfg, p, prefix, std, out_std);
  if (t == "gta") return make_gta_attention(cfg, p, prefix, std, out_std);
  if (t == "mla") return make_mla_attention(cfg, p, prefix, std, out_std);
  fail("unknown attention type '{}' (expected mha, gqa, mqa, gva, gha, gta or mla)", t);
}

Tensor apply_rope(const Tensor& x, int rot_dim, double theta, const LayerCache* cache) {
  return ops::rope(x, rot_dim, theta, cache ? cache->len : 0);
}

}  // namespace gta::nn
