#include "train/tensorboard.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "train/tensorboard_event.pb.h"
#include "train/tfrecord.h"

namespace gta::train {

namespace fs = std::filesystem;

const std::vector<std::pair<std::string, std::string>>& tensorboard_tags() {
  static const std::vector<std::pair<std::string, std::string>> tags = {
      {"loss", "train/loss"},
      {"lr", "train/lr"},
      {"grad_norm", "train/grad_norm"},
      {"tokens_per_s", "train/tokens_per_s"},
      {"mfu", "train/mfu"},
      {"peak_mem_gb", "train/peak_mem_gb"},
      {"val_loss", "val/loss"},
      {"val_ppl", "val/perplexity"},
      {"val_bpb", "val/bits_per_byte"},
  };
  return tags;
}

namespace {

double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  return gethostname(buf, sizeof(buf) - 1) == 0 && buf[0] ? std::string(buf) : std::string("localhost");
}

// The summary events of `files` (in order) with step <= last_step, read the way TensorBoard
// reads a restarted run: an event whose step is below the newest one seen so far replaces every
// kept event from its step on.
std::vector<tb::Event> kept_events(const std::vector<std::string>& files, int64_t last_step) {
  std::vector<tb::Event> kept;
  for (const auto& f : files) {
    for (tb::Event& e : read_event_file(f)) {
      if (!e.has_summary() || e.step() > last_step) continue;
      if (!kept.empty() && e.step() < kept.back().step())
        std::erase_if(kept, [&](const tb::Event& k) { return k.step() >= e.step(); });
      kept.push_back(std::move(e));
    }
  }
  return kept;
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& dir, int64_t resume_step) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  GTA_CHECK(!ec, "cannot create the TensorBoard directory {}: {}", dir, ec.message());
  const std::vector<std::string> earlier = event_files(dir);
  const std::vector<tb::Event> kept = resume_step >= 0 ? kept_events(earlier, resume_step) : std::vector<tb::Event>{};

  const double now = unix_time();
  path_ = (fs::path(dir) / fmt::format("events.out.tfevents.{}.{}.{}", static_cast<int64_t>(now), host_name(),
                                       getpid()))
              .string();
  // Written under a name TensorBoard does not read, then renamed: a watching TensorBoard never
  // sees a half-copied history.
  const std::string tmp = (fs::path(dir) / "events.tmp").string();
  f_ = std::fopen(tmp.c_str(), "wb");
  GTA_CHECK(f_ != nullptr, "cannot open {} for writing", tmp);
  tb::Event version;
  version.set_wall_time(now);
  version.set_file_version("brain.Event:2");
  append(version);
  for (const tb::Event& e : kept) append(e);
  std::fflush(f_);
  fs::rename(tmp, path_, ec);
  GTA_CHECK(!ec, "cannot rename {} to {}: {}", tmp, path_, ec.message());
  for (const auto& f : earlier)
    if (f != path_) fs::remove(f, ec);
}

TensorBoardWriter::~TensorBoardWriter() {
  if (f_) std::fclose(f_);
}

void TensorBoardWriter::append(const tb::Event& event) {
  const std::string rec = tfrecord::frame(event.SerializeAsString());
  GTA_CHECK(std::fwrite(rec.data(), 1, rec.size(), f_) == rec.size(), "write to {} failed", path_);
}

void TensorBoardWriter::write(const nlohmann::json& record) {
  tb::Event e;
  for (const auto& [key, tag] : tensorboard_tags()) {
    auto it = record.find(key);
    if (it == record.end() || !it->is_number()) continue;
    tb::Summary::Value* v = e.mutable_summary()->add_value();
    v->set_tag(tag);
    v->set_simple_value(it->get<float>());
  }
  if (!e.has_summary()) return;
  e.set_wall_time(unix_time());
  e.set_step(record.at("step").get<int64_t>());
  append(e);
  GTA_CHECK(std::fflush(f_) == 0, "write to {} failed", path_);
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file() && entry.path().filename().string().find("tfevents") != std::string::npos)
      files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<tb::Event> read_event_file(const std::string& path, std::string* damage) {
  std::ifstream in(path, std::ios::binary);
  GTA_CHECK(in, "cannot open the TensorBoard event file {}", path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const tfrecord::Records records = tfrecord::unframe(bytes.str());
  if (damage) *damage = records.damage;
  std::vector<tb::Event> events(records.data.size());
  for (size_t i = 0; i < records.data.size(); ++i)
    GTA_CHECK(events[i].ParseFromString(records.data[i]), "{}: record {} is not a TensorBoard Event", path, i);
  return events;
}

}  // namespace gta::train
