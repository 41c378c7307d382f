// A run directory (train.out_dir) belongs to one run, written by one trainer at a time.
//
//   - Ownership: a fresh `gta train` refuses a directory that already holds a run (a
//     checkpoints/ directory, metrics.jsonl or config.yaml): continue it with --resume, or
//     replace it with --overwrite, which deletes the old run's checkpoints and metrics first.
//   - One writer: the trainer holds an exclusive flock(2) on <out_dir>/.gta-lock for its whole
//     life; the file names the holder (pid, host, start time), so a second trainer is refused
//     with a message naming the first. The kernel drops the lock when its process ends, however
//     it ends (kill -9 included), so a stale lock never blocks a later run.
#pragma once
#include <string>

namespace gta::train {

class RunDirLock {
 public:
  // Creates out_dir if needed and takes the lock, or throws gta::Error naming the holder.
  explicit RunDirLock(const std::string& out_dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  int fd_ = -1;
};

// The name of the lock file inside a run directory.
constexpr const char* kRunLockFile = ".gta-lock";

// Checks (under the lock) that a fresh run may start in out_dir: refuses one that holds a run
// unless `overwrite`, which deletes that run's checkpoints, metrics.jsonl and config.yaml.
void claim_fresh_run_dir(const std::string& out_dir, bool overwrite);

}  // namespace gta::train
