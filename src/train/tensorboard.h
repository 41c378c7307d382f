// TensorBoard event files of a run (OUT_DIR/tb/, written by rank 0 beside metrics.jsonl):
// `tensorboard --logdir runs/` draws every run's scalars. Each file is TFRecord-framed
// (train/tfrecord.h) Event messages (train/tensorboard_event.proto): first the file version,
// then one Event per metrics.jsonl record, at the record's step, with a scalar summary for each of
// its numbers that tensorboard_tags() names.
//
// Resume: like metrics.jsonl, the events of steps after the resumed checkpoint (written after it
// by the run that stopped) are dropped. A start writes a new file that begins with the kept
// events of the directory's earlier files, then removes them: one file, steps in order, no step
// twice. A TensorBoard already watching reads the new file from step 1 again; its event reader
// takes a step that goes back for a restart and drops what it held from that step on.
#pragma once
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace gta::tb {
class Event;
}

namespace gta::train {

// {metrics.jsonl key, TensorBoard tag}: train/... from the train records, val/... from the eval
// records. Keys a record lacks, or holds as null, are left out of its event.
const std::vector<std::pair<std::string, std::string>>& tensorboard_tags();

class TensorBoardWriter {
 public:
  // Starts events.out.tfevents.<unix time>.<host>.<pid> in `dir` (created). resume_step >= 0:
  // the file begins with the events of the earlier event files of `dir` whose step is at most
  // resume_step; < 0: a fresh run, earlier event files are dropped. Either way the earlier files
  // are removed once the new one holds what is kept.
  TensorBoardWriter(const std::string& dir, int64_t resume_step);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // The event of one metrics.jsonl record (its "step" and the numbers tensorboard_tags() names),
  // flushed to the file; nothing for a record without such numbers.
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  void append(const tb::Event& event);
  std::FILE* f_ = nullptr;
  std::string path_;
};

// The files of `dir` that TensorBoard reads as event files (names holding "tfevents"), in name
// order; none when `dir` does not exist.
std::vector<std::string> event_files(const std::string& dir);

// The events of one file, in order, up to a torn or corrupt record; `damage` (when given) says
// why reading stopped early, or is empty. Throws gta::Error naming the file when it cannot be
// read or a sound record does not hold an Event.
std::vector<tb::Event> read_event_file(const std::string& path, std::string* damage = nullptr);

}  // namespace gta::train
