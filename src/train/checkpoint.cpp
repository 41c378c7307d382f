#include "train/checkpoint.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/sha256.h"
#include "io/safetensors.h"

namespace gta::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimFile = "optimizer.safetensors";
constexpr const char* kTrainerFile = "trainer.json";
constexpr const char* kTrainerFormat = "gta-checkpoint";

// "step_<digits>" exactly -> the step; nullopt otherwise.
std::optional<int64_t> parse_step_name(const std::string& name) {
  const std::string prefix = "step_";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::string digits = name.substr(prefix.size());
  if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(digits);
}

// "step_<digits>.<kind>-<pid>" (kind "tmp" or "old") -> the pid; 0 otherwise.
long parse_temp_pid(const std::string& name) {
  for (const std::string kind : {".tmp-", ".old-"}) {
    const size_t at = name.find(kind);
    if (at == std::string::npos || !parse_step_name(name.substr(0, at))) continue;
    const std::string pid = name.substr(at + kind.size());
    if (pid.empty() || pid.size() > 9 || !std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return 0;
    return std::stol(pid);
  }
  return 0;
}

bool is_complete(const fs::path& dir) {
  std::error_code ec;
  for (const char* f : {kModelFile, kOptimFile, kTrainerFile})
    if (!fs::is_regular_file(dir / f, ec)) return false;
  return true;
}

std::vector<CheckpointInfo> list_in_root(const fs::path& root) {
  std::vector<CheckpointInfo> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  fs::directory_iterator it(root, ec), end;
  if (ec) fail("cannot list checkpoint directory {}: {}", root.string(), ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) fail("cannot list checkpoint directory {}: {}", root.string(), ec.message());
    const std::string name = it->path().filename().string();
    auto step = parse_step_name(name);
    if (!step || !it->is_directory(ec) || !is_complete(it->path())) continue;
    out.push_back({*step, it->path().string()});
  }
  std::sort(out.begin(), out.end(), [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.step < b.step; });
  return out;
}

// "step_<digits>.del-<pid>": a checkpoint being deleted, garbage whoever renamed it.
bool is_being_deleted(const std::string& name) {
  const size_t at = name.find(".del-");
  return at != std::string::npos && parse_step_name(name.substr(0, at)).has_value();
}

// Deletes complete checkpoints beyond the newest `keep`, the leftovers of deletions that were
// interrupted, and temporary directories of processes that no longer run. A checkpoint is first
// renamed to step_<n>.del-<pid> (atomic), then deleted: a kill in between leaves a directory that
// no listing takes for a checkpoint and that the next save removes, never a half-deleted step_<n>.
// Best effort: a failure is logged, never thrown (the new checkpoint is safe).
void prune(const fs::path& root, int64_t keep) {
  try {
    std::error_code ec;
    const std::string self = std::to_string(::getpid());
    if (keep > 0) {
      auto all = list_in_root(root);
      for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {
        const std::string doomed = all[i].dir + ".del-" + self;
        if (::rename(all[i].dir.c_str(), doomed.c_str()) != 0)
          spdlog::warn("could not delete old checkpoint {}: cannot rename it to {}: {}", all[i].dir, doomed, errno_str());
      }
    }
    std::vector<fs::path> garbage;
    for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!is_being_deleted(name)) {
        const long pid = parse_temp_pid(name);
        if (pid <= 0 || pid == ::getpid()) continue;
        if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // still running (or unknown)
      }
      garbage.push_back(it->path());
    }
    for (const fs::path& g : garbage) {
      fs::remove_all(g, ec);
      if (ec) spdlog::warn("could not delete {}: {}", g.string(), ec.message());
    }
  } catch (const std::exception& e) {
    spdlog::warn("pruning checkpoints in {}: {}", root.string(), e.what());
  }
}

int64_t parse_int_metadata(const std::map<std::string, std::string>& md, const std::string& key, const std::string& file) {
  auto it = md.find(key);
  GTA_CHECK(it != md.end(), "{}: metadata has no '{}' entry", file, key);
  try {
    size_t used = 0;
    const int64_t v = std::stoll(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  fail("{}: metadata '{}' must be an integer, got '{}'", file, key, it->second);
}

config::ModelConfig config_from_metadata(const std::map<std::string, std::string>& md, const std::string& file) {
  const std::string& text = md.at("config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: metadata 'config' is not valid JSON: {}", file, e.what());
  }
  return config::model_config_from_json(j, file + " metadata 'config'");
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open: {}", path, errno_str());
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON (truncated or corrupt?): {}", path, e.what());
  }
}

TrainerState parse_trainer_json(const nlohmann::json& j, const std::string& path, int64_t* optimizer_step) {
  GTA_CHECK(j.is_object(), "{}: expected a JSON object, got {}", path, j.type_name());
  GTA_CHECK(j.contains("format") && j["format"] == kTrainerFormat, "{}: not a gta checkpoint (\"format\" must be \"{}\")",
            path, kTrainerFormat);
  GTA_CHECK(j.contains("version") && j["version"].is_number_integer(), "{}: missing integer \"version\"", path);
  const int64_t version = j["version"].get<int64_t>();
  if (version != kCheckpointVersion)
    fail("{}: checkpoint format version {}, but this build of gta reads version {} ({})", path, version,
         kCheckpointVersion,
         version > kCheckpointVersion ? "written by a newer gta: update gta to load it"
                                      : "written by an older gta: no conversion exists");
  TrainerState st;
  try {
    GTA_CHECK(j.contains("step") && j["step"].is_number_integer(), "{}: missing integer \"step\"", path);
    st.step = j["step"].get<int64_t>();
    GTA_CHECK(st.step >= 0, "{}: \"step\" must be >= 0, got {}", path, st.step);
    const auto& rng = j.at("rng");
    GTA_CHECK(rng.is_array() && rng.size() == 5, "{}: \"rng\" must be an array of 5 unsigned integers", path);
    for (size_t i = 0; i < 5; ++i) {
      GTA_CHECK(rng[i].is_number_unsigned(), "{}: \"rng\"[{}] must be an unsigned integer, got {}", path, i, rng[i].dump());
      st.rng[i] = rng[i].get<uint64_t>();
    }
    st.loader = j.value("loader", nlohmann::json::object());
    st.config = j.value("config", nlohmann::json::object());
    st.extra = j.value("extra", nlohmann::json::object());
    *optimizer_step = j.value("optimizer_step", int64_t{-1});
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}", path, e.what());
  }
  return st;
}

// Checks each of `files` in `dir` against the SHA-256 that trainer.json (`tj`, read from
// `tpath`) recorded for it at save time. Checkpoints written before digests were recorded have
// none: nothing to check.
void verify_digests(const fs::path& dir, const nlohmann::json& tj, const std::string& tpath,
                    std::initializer_list<const char*> files) {
  if (!tj.contains("sha256")) return;
  const nlohmann::json& recorded = tj["sha256"];
  GTA_CHECK(recorded.is_object(), "{}: \"sha256\" must be an object of file name to hex digest", tpath);
  for (const char* f : files) {
    if (!recorded.contains(f)) continue;
    GTA_CHECK(recorded[f].is_string(), "{}: \"sha256\".\"{}\" must be a hex string", tpath, f);
    const std::string path = (dir / f).string();
    const std::string actual = sha256_file(path);
    if (actual != recorded[f].get<std::string>())
      fail("{}: SHA-256 {} does not match {} recorded in {} when it was saved: the file is corrupt or was "
           "changed (a bad disk or copy); load an older checkpoint, or pass --no-verify to load it anyway",
           path, actual, recorded[f].get<std::string>(), tpath);
  }
}

}  // namespace

std::string checkpoint_dir_name(int64_t step) {
  GTA_CHECK(step >= 0, "checkpoint step must be >= 0, got {}", step);
  return fmt::format("step_{:06d}", step);
}

std::string checkpoints_root(const std::string& out_dir) { return (fs::path(out_dir) / "checkpoints").string(); }

std::string save_checkpoint(const std::string& out_dir, const nn::Params& params, const config::ModelConfig& model_cfg,
                            const optim::AdamWState& ost, const TrainerState& state, int64_t keep) {
  GTA_CHECK(keep >= 0, "checkpoint.keep must be >= 0 (0 = keep all), got {}", keep);
  const fs::path root = checkpoints_root(out_dir);
  const std::string name = checkpoint_dir_name(state.step);
  const fs::path final = root / name;
  const fs::path tmp = root / (name + ".tmp-" + std::to_string(::getpid()));
  {
    std::error_code ec;
    fs::create_directories(root, ec);
    if (ec || !fs::is_directory(root))
      fail("cannot create checkpoint directory {}: {}", root.string(), ec ? ec.message() : "exists and is not a directory");
    fs::remove_all(tmp, ec);  // a leftover of this very process
  }
  try {
    std::error_code ec;
    if (!fs::create_directory(tmp, ec) || ec)
      fail("cannot create {}: {}", tmp.string(), ec ? ec.message() : "already exists");

    const nlohmann::json model_json = config::to_json(model_cfg);
    // Mixed precision: a bf16 parameter is the rounding of its fp32 master weight, so the model
    // file holds the master (an f32 run, CPU or GPU, then continues from the exact weights).
    std::map<std::string, Tensor> weights;
    for (const auto& [pname, t] : params.all()) {
      auto master = ost.tensors.find(pname + ".master");
      weights[pname] = master != ost.tensors.end() ? master->second : t.detach();
    }
    nlohmann::json digests = nlohmann::json::object();
    digests[kModelFile] = io::save_safetensors(
        (tmp / kModelFile).string(), weights,
        {{"format", "gta"}, {"config", model_json.dump()}, {"step", std::to_string(state.step)}});
    digests[kOptimFile] = io::save_safetensors((tmp / kOptimFile).string(), ost.tensors,
                                               {{"format", "gta-adamw"}, {"step", std::to_string(ost.step)}});

    nlohmann::json j;
    j["format"] = kTrainerFormat;
    j["version"] = kCheckpointVersion;
    j["step"] = state.step;
    j["optimizer_step"] = ost.step;
    j["rng"] = state.rng;
    j["loader"] = state.loader;
    j["config"] = state.config;
    j["model_config"] = model_json;
    j["extra"] = state.extra;
    j["sha256"] = digests;
    write_file_synced((tmp / kTrainerFile).string(), j.dump(2) + "\n");

    sync_dir(tmp.string());
    install_dir(tmp.string(), final.string());
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fail("saving checkpoint {} failed (existing checkpoints are untouched): {}", final.string(), e.what());
  }
  prune(root, keep);
  return final.string();
}

std::vector<CheckpointInfo> list_checkpoints(const std::string& out_dir) {
  return list_in_root(checkpoints_root(out_dir));
}

std::optional<std::string> latest_checkpoint(const std::string& out_dir) {
  auto all = list_checkpoints(out_dir);
  if (all.empty()) return std::nullopt;
  return all.back().dir;
}

Checkpoint load_checkpoint(const std::string& dir, bool verify) {
  std::error_code ec;
  GTA_CHECK(fs::is_directory(dir, ec), "checkpoint {}: not a directory", dir);
  const fs::path d(dir);
  try {
    Checkpoint ck;
    ck.dir = dir;
    for (const char* f : {kTrainerFile, kModelFile, kOptimFile})
      GTA_CHECK(fs::is_regular_file(d / f, ec), "{}: missing (checkpoint {} is incomplete)", (d / f).string(), dir);

    const std::string tpath = (d / kTrainerFile).string();
    int64_t optimizer_step = -1;
    const nlohmann::json tj = read_json_file(tpath);
    ck.trainer = parse_trainer_json(tj, tpath, &optimizer_step);
    const auto named_step = parse_step_name(d.filename().string());
    GTA_CHECK(!named_step || *named_step == ck.trainer.step,
              "{}: \"step\" is {} but the checkpoint directory is named for step {}", tpath, ck.trainer.step,
              *named_step);
    if (verify) verify_digests(d, tj, tpath, {kModelFile, kOptimFile});

    const std::string mpath = (d / kModelFile).string();
    io::SafetensorsFile mf = io::load_safetensors(mpath);
    if (mf.metadata.count("config")) {
      ck.model_config = config_from_metadata(mf.metadata, mpath);
    } else {
      GTA_CHECK(tj.contains("model_config"), "{}: no model config (metadata 'config'), and {} has no \"model_config\"",
                mpath, tpath);
      ck.model_config = config::model_config_from_json(tj["model_config"], tpath + " \"model_config\"");
    }
    ck.model = std::move(mf.tensors);

    const std::string opath = (d / kOptimFile).string();
    io::SafetensorsFile of = io::load_safetensors(opath);
    ck.optimizer.step = parse_int_metadata(of.metadata, "step", opath);
    GTA_CHECK(optimizer_step < 0 || optimizer_step == ck.optimizer.step,
              "{}: optimizer step {} disagrees with {} (\"optimizer_step\" {})", opath, ck.optimizer.step, tpath,
              optimizer_step);
    ck.optimizer.tensors = std::move(of.tensors);
    return ck;
  } catch (const Error& e) {
    // Point at the checkpoint to fall back to, when the run has an older complete one.
    std::string hint;
    const auto step = parse_step_name(d.filename().string());
    if (step) {
      try {
        const auto all = list_in_root(d.parent_path());
        for (auto it = all.rbegin(); it != all.rend(); ++it) {
          if (it->step < *step) {
            hint = fmt::format("\n(the previous checkpoint {} is still available: move {} away to resume from it)",
                               it->dir, dir);
            break;
          }
        }
      } catch (const std::exception&) {
      }
    }
    throw Error(e.what() + hint);
  }
}

void restore_checkpoint(const Checkpoint& ckpt, nn::Params& params, optim::AdamW& opt) {
  params.load(ckpt.model, (fs::path(ckpt.dir) / kModelFile).string());
  opt.load_state(ckpt.optimizer, (fs::path(ckpt.dir) / kOptimFile).string());
}

namespace {

// The .safetensors file `path` refers to (see resolve_model_weights in checkpoint.h).
std::string resolve_weights_file(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  if (!fs::exists(p, ec))
    fail("{}: no such file or directory (expected a .safetensors file, a checkpoint directory or a run directory)",
         path);
  if (fs::is_regular_file(p, ec)) return path;
  GTA_CHECK(fs::is_directory(p, ec), "{}: neither a file nor a directory", path);
  if (fs::is_regular_file(p / kModelFile, ec)) return (p / kModelFile).string();
  const std::string root = checkpoints_root(path);
  if (fs::is_directory(root, ec)) {
    const auto latest = latest_checkpoint(path);
    GTA_CHECK(latest.has_value(),
              "{}: run directory has no complete checkpoint in {} (a step_N/ directory holding {}, {} and {})", path,
              root, kModelFile, kOptimFile, kTrainerFile);
    return (fs::path(*latest) / kModelFile).string();
  }
  fail("{}: not a checkpoint: no {} in it and no checkpoints/ directory (expected a .safetensors file, a directory "
       "holding {}, or a run directory with checkpoints/step_N/)",
       path, kModelFile, kModelFile);
}

// train.seq_len of the run that wrote `file`, from the trainer.json beside a checkpoint's
// model.safetensors; 0 when there is none.
int64_t trained_context(const std::string& file) {
  const fs::path p(file), tpath = p.parent_path() / kTrainerFile;
  std::error_code ec;
  if (p.filename() != kModelFile || !fs::is_regular_file(tpath, ec)) return 0;
  const nlohmann::json tj = read_json_file(tpath.string());
  const nlohmann::json::json_pointer ptr("/config/train/seq_len");
  if (!tj.contains(ptr)) return 0;
  const nlohmann::json& v = tj[ptr];
  GTA_CHECK(v.is_number_integer() && v.get<int64_t>() >= 1,
            "{}: \"config\".\"train\".\"seq_len\" must be a positive integer, got {}", tpath.string(), v.dump());
  return v.get<int64_t>();
}

ModelWeightsInfo weights_info(const std::map<std::string, std::string>& md, const std::string& file) {
  ModelWeightsInfo w;
  w.source = file;
  if (md.count("config")) {
    w.config = config_from_metadata(md, file);
    GTA_CHECK(w.config->vocab_size > 0, "{}: metadata 'config' has no vocab_size", file);
  }
  if (md.count("step")) w.step = parse_int_metadata(md, "step", file);
  w.context = trained_context(file);
  return w;
}

}  // namespace

ModelWeightsInfo resolve_model_weights(const std::string& path) {
  const std::string file = resolve_weights_file(path);
  return weights_info(io::read_safetensors_header(file).metadata, file);
}

ModelWeights load_model_weights(const std::string& path, bool verify) {
  const std::string file = resolve_weights_file(path);
  // A checkpoint's model.safetensors: checked against the digest its trainer.json recorded.
  const fs::path dir = fs::path(file).parent_path(), tpath = dir / kTrainerFile;
  std::error_code ec;
  if (verify && fs::path(file).filename() == kModelFile && fs::is_regular_file(tpath, ec))
    verify_digests(dir, read_json_file(tpath.string()), tpath.string(), {kModelFile});
  io::SafetensorsFile f = io::load_safetensors(file);
  ModelWeights w;
  // Config and step from the very file whose tensors are returned (not a separate header read).
  static_cast<ModelWeightsInfo&>(w) = weights_info(f.metadata, file);
  w.tensors = std::move(f.tensors);
  return w;
}

config::ModelConfig model_config_for_weights(const std::string& yaml_path, const std::string& weights) {
  config::ModelConfig cfg = config::load_model_config(yaml_path);
  if (cfg.vocab_size > 0) return cfg;
  const io::SafetensorsHeader h = io::read_safetensors_header(weights);
  const auto it = h.entries.find("model.embed_tokens.weight");
  GTA_CHECK(it != h.entries.end() && it->second.shape.size() == 2,
            "{}: model.vocab_size is 0 (from the tokenizer) and {} has no 2-D model.embed_tokens.weight to take it "
            "from; set model.vocab_size",
            yaml_path, weights);
  cfg.vocab_size = it->second.shape[0];
  cfg.validate();
  return cfg;
}

std::unique_ptr<nn::Model> load_model(const std::string& path, DType dtype,
                                      const std::optional<config::ModelConfig>& fallback, bool verify) {
  ModelWeights w = load_model_weights(path, verify);
  if (!w.config && !fallback)
    fail("{}: no model config in its metadata (key 'config'; not written by gta?) and none was given (--config "
         "MODEL.yaml)",
         w.source);
  const config::ModelConfig cfg = w.config ? *w.config : *fallback;
  auto model = std::make_unique<nn::Model>(cfg, dtype, 0);
  model->params().load(w.tensors, w.source);
  return model;
}

}  // namespace gta::train
