#include "nn/golden.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "nn/model.h"
#include "ops/ops.h"

namespace gta::nn {

namespace {

// Normwise relative error: max|got - want| / max|want| (elementwise ratios explode near zero).
double rel_err(const Tensor& got, const Tensor& want) {
  std::vector<double> g = got.to(Device::cpu()).to_doubles(), w = want.to_doubles();
  GTA_CHECK(g.size() == w.size(), "golden: size mismatch {} vs {}", got.str(), want.str());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    diff = std::max(diff, std::abs(g[i] - w[i]));
    scale = std::max(scale, std::abs(w[i]));
  }
  if (std::isnan(diff)) return INFINITY;
  return diff / std::max(scale, 1e-300);
}

const std::string& meta(const io::SafetensorsFile& f, const std::string& key, const std::string& path) {
  auto it = f.metadata.find(key);
  GTA_CHECK(it != f.metadata.end(), "{}: __metadata__ has no '{}' (see tests/golden/README.md)", path, key);
  return it->second;
}

const Tensor& tensor(const io::SafetensorsFile& f, const std::string& name, const std::string& path) {
  auto it = f.tensors.find(name);
  GTA_CHECK(it != f.tensors.end(), "{}: missing tensor '{}'", path, name);
  return it->second;
}

}  // namespace

double GoldenReport::max_rel_err() const {
  double m = 0;
  for (const auto& g : groups) m = std::max(m, g.max_rel_err);
  return m;
}

GoldenReport check_golden(const std::string& path, DType dtype, Device device) {
  io::SafetensorsFile f = io::load_safetensors(path);
  nlohmann::json cfg_json;
  try {
    cfg_json = nlohmann::json::parse(meta(f, "config", path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: __metadata__.config is not valid JSON: {}", path, e.what());
  }
  config::ModelConfig cfg = config::model_config_from_json(cfg_json, path + " __metadata__.config");
  Model model(cfg, dtype);
  model.params().load(f.tensors, path, {"tokens", "expected.", "grad."});
  model.params().move_to(device);

  GoldenReport rep;
  rep.path = path;
  rep.attention_type = cfg.attention.type;
  rep.dtype = dtype;
  rep.device = device;
  rep.kv_elems_model = cfg.kv_cache_elems_per_token_per_layer();
  if (f.metadata.count("kv_cache_elems_per_token_per_layer"))
    rep.kv_elems_expected = std::stoll(f.metadata.at("kv_cache_elems_per_token_per_layer"));

  const Tensor& tokens = tensor(f, "tokens", path);
  auto [inputs, targets] = split_inputs_targets(tokens.to(device));
  Tensor logits = model.forward(inputs);
  Tensor loss = ops::cross_entropy(logits.reshape({-1, cfg.vocab_size}), targets);
  loss.backward();

  rep.groups.push_back({"logits", rel_err(logits, tensor(f, "expected.logits", path)), "expected.logits"});
  rep.groups.push_back({"loss", rel_err(loss, tensor(f, "expected.loss", path)), "expected.loss"});
  GoldenGroupError grads{"grad", 0, ""};
  for (const auto& [name, p] : model.params().all()) {
    GTA_CHECK(p.grad().defined(), "{}: parameter {} received no gradient", path, name);
    double e = rel_err(p.grad(), tensor(f, "grad." + name, path));
    if (e >= grads.max_rel_err) grads = {"grad", e, "grad." + name};
  }
  rep.groups.push_back(grads);
  return rep;
}

}  // namespace gta::nn
