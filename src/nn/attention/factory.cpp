#include "config/attention_types.h"
#include "core/error.h"
#include "nn/attention/attention.h"
#include "ops/decode_position.h"
#include "ops/ops.h"

namespace gta::nn {

std::unique_ptr<Attention> make_shared_map_attention(const config::ModelConfig&, Params&, const std::string&, double,
                                                     double);
std::unique_ptr<Attention> make_gta_attention(const config::ModelConfig&, Params&, const std::string&, double, double);
std::unique_ptr<Attention> make_mla_attention(const config::ModelConfig&, Params&, const std::string&, double, double);

// The table of attention types names the module that implements each type.
std::unique_ptr<Attention> make_attention(const config::ModelConfig& cfg, Params& p, const std::string& prefix,
                                          double std, double out_std) {
  const config::AttentionType* type = config::find_attention_type(cfg.attention.type);
  if (type == nullptr) {
    const auto& names = config::attention_types();
    std::string expected;
    for (size_t i = 0; i < names.size(); ++i)
      expected += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
    fail("unknown attention type '{}' (expected {})", cfg.attention.type, expected);
  }
  switch (type->module) {
    case config::AttentionModule::gta:
      return make_gta_attention(cfg, p, prefix, std, out_std);
    case config::AttentionModule::mla:
      return make_mla_attention(cfg, p, prefix, std, out_std);
    case config::AttentionModule::shared_map:
      break;
  }
  return make_shared_map_attention(cfg, p, prefix, std, out_std);
}

Tensor apply_rope(const Tensor& x, int rot_dim, double theta, const LayerCache* cache) {
  if (cache && cache->position.defined()) return ops::rope_at(x, rot_dim, theta, cache->position);
  return ops::rope(x, rot_dim, theta, cache ? cache->len : 0);
}

}  // namespace gta::nn
