// The run's metrics as JSON lines (<out_dir>/metrics.jsonl), one object per logged event, also
// written as TensorBoard events when asked; and the live progress line on stderr.
#pragma once
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/progress_line.h"

namespace gta::train {

class TensorBoardWriter;

class MetricsLog {
 public:
  // Opens for appending. On resume, lines of steps after `resume_step` (written by the run after
  // its last checkpoint) are dropped first, so the file reads as one uninterrupted run.
  // A non-empty `tensorboard_dir` receives every record as a TensorBoard event too, kept across a
  // resume the same way (train/tensorboard.h).
  MetricsLog(const std::string& path, int64_t resume_step, const std::string& tensorboard_dir = "");
  ~MetricsLog();
  // Appends the record and flushes it (and its event) to disk.
  void write(const nlohmann::json& record);

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

// "step 120/1000 | loss 3.1234 | lr 2.91e-04 | 12.3k tok/s | ETA 3m12s"
class Progress {
 public:
  // Silent when !enabled (ranks other than 0 of a data-parallel run).
  Progress(int64_t first_step, int64_t total_steps, bool enabled = true);
  void update(int64_t step, double loss, double lr, double tokens_per_s, double grad_norm, bool force_newline);
  void message(const std::string& line);  // a full line that does not disturb the progress line
  void finish();

 private:
  int64_t first_, total_;
  ProgressLine line_;
  std::chrono::steady_clock::time_point start_;
};

std::string format_duration(double seconds);

}  // namespace gta::train
