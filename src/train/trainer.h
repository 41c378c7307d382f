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
  std::string config_source;  // the YAML path, for messages
};

struct TrainSummary {
  int64_t steps_done = 0;
  double final_train_loss = 0, final_val_loss = -1, final_val_bpb = -1;
  bool interrupted = false;
  bool lead = true;  // this process is rank 0 (the one that reports)
  std::string last_checkpoint;
};

TrainSummary run_training(const TrainOptions& opts);

// Set by SIGINT/SIGTERM: the loop finishes the current step, checkpoints and returns.
void install_stop_signal_handlers();
bool stop_requested();

}  // namespace gta::train
