#include "train/metrics.h"

#include <fstream>
#include <vector>

#include "core/durable_file.h"
#include "core/error.h"
#include "train/tensorboard.h"

namespace gta::train {

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step, const std::string& tensorboard_dir)
    : path_(path) {
  if (resume_step >= 0) {
    std::vector<std::string> keep;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      try {
        auto j = nlohmann::json::parse(line);
        if (j.value("step", int64_t{0}) <= resume_step) keep.push_back(line);
      } catch (const nlohmann::json::exception&) {
        // a line torn by a crash: dropped
      }
    }
    in.close();
    std::string text;
    for (const auto& l : keep) text += l + "\n";
    write_file_durable(path, text);
  }
  f_ = std::fopen(path.c_str(), resume_step >= 0 ? "a" : "w");
  GTA_CHECK(f_ != nullptr, "cannot open metrics file {} for writing", path);
  if (!tensorboard_dir.empty()) tensorboard_ = std::make_unique<TensorBoardWriter>(tensorboard_dir, resume_step);
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::write(const nlohmann::json& record) {
  std::string s = record.dump() + "\n";
  GTA_CHECK(std::fwrite(s.data(), 1, s.size(), f_) == s.size(), "write to {} failed", path_);
  std::fflush(f_);
  if (tensorboard_) tensorboard_->write(record);
}

std::string format_duration(double s) {
  if (s < 0 || s > 1e8) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

Progress::Progress(int64_t first_step, int64_t total_steps, bool enabled)
    : first_(first_step), total_(total_steps), line_(enabled), start_(std::chrono::steady_clock::now()) {}

void Progress::update(int64_t step, double loss, double lr, double tps, double grad_norm, bool force_newline) {
  if (!line_.enabled()) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double done = static_cast<double>(step - first_);
  const double eta = done > 0 ? elapsed / done * static_cast<double>(total_ - step) : -1;
  std::string rate = tps >= 1e3 ? fmt::format("{:.1f}k", tps / 1e3) : fmt::format("{:.0f}", tps);
  std::string line = fmt::format("step {}/{} | loss {:.4f} | lr {:.2e} | gnorm {:.2f} | {} tok/s | ETA {}", step,
                                 total_, loss, lr, grad_norm, rate, format_duration(eta));
  if (line_.tty() && !force_newline) line_.redraw(line);
  else line_.print(line);
}

void Progress::message(const std::string& line) { line_.print(line); }

void Progress::finish() { line_.finish(); }

}  // namespace gta::train
