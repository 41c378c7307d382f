#include "interop/hf_import.h"

#include <filesystem>
#include <set>

#include "core/error.h"
#include "interop/hf_tensors.h"
#include "interop/output_dir.h"
#include "core/durable_file.h"
#include "io/file_bytes.h"
#include "io/safetensors.h"
#include "nn/model.h"

namespace gta::interop {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const fs::path& path) {
  try {
    return nlohmann::json::parse(io::read_file_bytes(path.string()));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", path.string(), e.what());
  }
}

// The weight files of a save_pretrained directory: model.safetensors, or the shards that
// model.safetensors.index.json's "weight_map" names.
std::vector<fs::path> weight_files(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir / "model.safetensors", ec)) return {dir / "model.safetensors"};
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::is_regular_file(index, ec)) {
    const nlohmann::json j = read_json(index);
    GTA_CHECK(j.contains("weight_map") && j["weight_map"].is_object(),
              "{}: no \"weight_map\" object (tensor name -> shard file)", index.string());
    std::set<std::string> files;
    for (const auto& [name, file] : j["weight_map"].items()) {
      GTA_CHECK(file.is_string(), "{}: \"weight_map\".\"{}\" must be a file name", index.string(), name);
      files.insert(file.get<std::string>());
    }
    std::vector<fs::path> out;
    for (const auto& f : files) out.push_back(dir / f);
    return out;
  }
  for (const char* torch_file : {"pytorch_model.bin", "model.pt", "pytorch_model.bin.index.json"})
    GTA_CHECK(!fs::exists(dir / torch_file, ec),
              "{}: holds {} but no model.safetensors: gta reads safetensors only (save with "
              "save_pretrained(..., safe_serialization=True))",
              dir.string(), torch_file);
  fail("{}: no model.safetensors or model.safetensors.index.json (expected a directory written by save_pretrained "
       "or gta export --hf)",
       dir.string());
}

}  // namespace

HfImportResult import_hf(const HfImportOptions& o) {
  const fs::path dir(o.hf_dir);
  std::error_code ec;
  GTA_CHECK(fs::exists(dir, ec), "{}: no such directory (expected a transformers model directory)", o.hf_dir);
  GTA_CHECK(fs::is_directory(dir, ec), "{}: not a directory (expected a transformers model directory)", o.hf_dir);
  const fs::path config_path = dir / "config.json";
  GTA_CHECK(fs::is_regular_file(config_path, ec),
            "{}: no config.json (expected a directory written by save_pretrained or gta export --hf)", o.hf_dir);
  const HfImportedConfig cfg = model_config_from_hf(read_json(config_path), config_path.string());
  HfImportResult r;
  r.arch = cfg.arch;
  r.model = cfg.model;

  std::map<std::string, Tensor> tensors;
  for (const fs::path& f : weight_files(dir)) {
    GTA_CHECK(fs::is_regular_file(f, ec), "{}: missing (named by {})", f.string(),
              (dir / "model.safetensors.index.json").string());
    io::SafetensorsFile sf = io::load_safetensors(f.string());
    for (auto& [name, t] : sf.tensors) {
      GTA_CHECK(!tensors.count(name), "{}: tensor {} is also in another shard", f.string(), name);
      tensors.emplace(name, std::move(t));
    }
    r.weight_files.push_back(f.string());
  }
  const std::string source = r.weight_files.size() == 1 ? r.weight_files[0] : o.hf_dir;
  OutputDir out(o.out_dir, o.overwrite);
  // Loading into a model checks every name and shape (a missing, extra or misshapen tensor is an
  // error naming it) and converts to f32.
  nn::Model model(cfg.model, DType::f32, 0);
  model.params().load(from_hf_tensors(cfg, std::move(tensors), source), source);
  std::map<std::string, Tensor> params;
  for (const auto& [name, t] : model.params().all()) params[name] = t.detach();
  io::save_safetensors((out.tmp() / "model.safetensors").string(), params,
                       {{"format", "gta"}, {"config", config::to_json(cfg.model).dump()}, {"source", o.hf_dir}});
  if (fs::is_regular_file(dir / "tokenizer.model", ec)) {
    r.tokenizer = (dir / "tokenizer.model").string();
    write_file_synced((out.tmp() / "tokenizer.model").string(), io::read_file_bytes(r.tokenizer));
  }
  out.commit();
  return r;
}

}  // namespace gta::interop
