#include "infer/load.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"

namespace gta::infer {

namespace fs = std::filesystem;

namespace {

// The newest step_N/model.safetensors under `ckpt_dir`; "" when there is none.
std::string newest_checkpoint(const fs::path& ckpt_dir) {
  static const std::regex step_re("step_([0-9]+)");
  std::error_code ec;
  long long best = -1;
  std::string best_path;
  for (const auto& e : fs::directory_iterator(ckpt_dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || !std::regex_match(name, m, step_re)) continue;  // skips step_N.tmp
    const fs::path w = e.path() / "model.safetensors";
    const long long n = std::stoll(m[1].str());
    if (n > best && fs::is_regular_file(w)) best = n, best_path = w.string();
  }
  return best_path;
}

}  // namespace

std::string resolve_weights(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  if (!fs::exists(p, ec)) fail("checkpoint '{}' does not exist", path);
  if (fs::is_regular_file(p, ec)) return p.string();
  GTA_CHECK(fs::is_directory(p, ec), "checkpoint '{}' is neither a file nor a directory", path);
  if (fs::is_regular_file(p / "model.safetensors", ec)) return (p / "model.safetensors").string();
  if (fs::is_directory(p / "checkpoints", ec)) {
    std::string w = newest_checkpoint(p / "checkpoints");
    GTA_CHECK(!w.empty(), "run directory '{}' has no checkpoint: no {}/checkpoints/step_N/model.safetensors", path,
              path);
    return w;
  }
  fail("'{}' is not a checkpoint: expected a .safetensors file, a checkpoint directory with model.safetensors, "
       "or a run directory with checkpoints/step_N/",
       path);
}

config::ModelConfig read_weights_config(const std::string& weights_path) {
  io::SafetensorsHeader h = io::read_safetensors_header(weights_path);
  auto it = h.metadata.find("config");
  GTA_CHECK(it != h.metadata.end(), "{}: __metadata__ has no 'config' (the model config JSON); not a gta checkpoint?",
            weights_path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: __metadata__.config is not valid JSON: {}", weights_path, e.what());
  }
  return config::model_config_from_json(j, weights_path + " __metadata__.config");
}

LoadedModel load_model(const std::string& path, DType dtype) {
  LoadedModel out;
  out.weights_path = resolve_weights(path);
  config::ModelConfig cfg = read_weights_config(out.weights_path);
  GTA_CHECK(cfg.vocab_size > 0, "{}: model config has no vocab_size", out.weights_path);
  io::SafetensorsFile f = io::load_safetensors(out.weights_path);
  out.model = std::make_unique<nn::Model>(cfg, dtype);
  out.model->params().load(f.tensors, out.weights_path);
  return out;
}

std::string find_tokenizer(const std::string& weights_path) {
  const fs::path dir = fs::absolute(fs::path(weights_path)).parent_path();
  std::vector<fs::path> dirs = {dir};
  if (dir.parent_path().filename() == "checkpoints") {  // <run>/checkpoints/step_N/
    dirs.push_back(dir.parent_path());
    dirs.push_back(dir.parent_path().parent_path());
  }
  std::error_code ec;
  for (const fs::path& d : dirs)
    if (fs::is_regular_file(d / "tokenizer.model", ec)) return (d / "tokenizer.model").string();
  return "";
}

}  // namespace gta::infer
