// The training loop behind `gta train`:
//   for each step: lr from the schedule; accumulate gradients over micro-batches until the global
//   batch (train.global_batch_tokens) is reached; clip the global norm; AdamW; log; periodically
//   evaluate on the validation shards and checkpoint.
// Same config + seed + data => the same run, and --resume continues a run bit for bit.
#pragma once
#include <string>

#include "config/config.h"

namespace gta::train {

struct TrainOptions {
  config::RunConfig config;
  bool resume = false;
  bool overwrite = false;     // a fresh run may replace the run already in train.out_dir
  bool verify = true;         // --resume checks the checkpoint files' SHA-256
  std::string config_source;  // the YAML path, for messages
};

struct TrainSummary {
  int64_t steps_done = 0;
  double final_train_loss = 0, final_val_loss = -1, final_val_bpb = -1;
  int stop_signal = 0;            // SIGINT or SIGTERM when a signal stopped the run (after its checkpoint)
  bool already_finished = false;  // --resume found the run at train.steps already: nothing was trained
  bool lead = true;               // this process is rank 0 (the one that reports)
  std::string last_checkpoint;
};

TrainSummary run_training(const TrainOptions& opts);

// Set by SIGINT/SIGTERM: the loop finishes the current step, checkpoints and returns.
void install_stop_signal_handlers();
// The signal that asked the run to stop (SIGINT or SIGTERM), 0 when none did.
int stop_requested();

}  // namespace gta::train
