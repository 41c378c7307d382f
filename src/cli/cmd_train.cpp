// gta train CONFIG.yaml [--set section.key=value ...] [--resume | --overwrite]
// Exit status: 0 when the run reached train.steps, 128 + the signal (130 SIGINT, 143 SIGTERM)
// when a signal stopped it after its checkpoint (continue it with --resume), 1 on an error.
#include <cstdio>

#include "cli/commands.h"
#include "infer/evaluate.h"
#include "train/trainer.h"

namespace gta::cli {

namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  bool resume = false;
  bool overwrite = false;
  bool no_verify = false;
};

void run_train(const TrainArgs& a) {
  train::TrainOptions o;
  o.config = config::load_run_config(a.config, a.overrides);
  o.config_source = a.config;
  o.resume = a.resume;
  o.overwrite = a.overwrite;
  o.verify = !a.no_verify;
  train::install_stop_signal_handlers();
  train::TrainSummary s = train::run_training(o);
  if (s.stop_signal != 0) exit_status() = 128 + s.stop_signal;
  if (!s.lead) return;
  if (s.already_finished) {
    std::printf("nothing to train: the run already reached train.steps = %lld\ncheckpoint: %s\n",
                static_cast<long long>(s.steps_done), s.last_checkpoint.c_str());
    return;
  }
  std::printf("%s %lld steps: train loss %.4f", s.stop_signal ? "stopped after" : "trained",
              static_cast<long long>(s.steps_done), s.final_train_loss);
  if (s.final_val_loss >= 0)
    std::printf(", val loss %.4f, %s", s.final_val_loss, infer::bits_per_byte_text(s.final_val_bpb).c_str());
  std::printf("\ncheckpoint: %s\n", s.last_checkpoint.c_str());
}

}  // namespace

void register_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model from a YAML config");
  cmd->add_option("config", a->config, "run config (YAML)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", a->overrides, "override a config key: section.key=value (repeatable)");
  auto* resume = cmd->add_flag("--resume", a->resume, "continue from the newest checkpoint in train.out_dir");
  cmd->add_flag("--overwrite", a->overwrite,
                "start afresh in a train.out_dir that holds a run, deleting its checkpoints and metrics")
      ->excludes(resume);
  cmd->add_flag("--no-verify", a->no_verify,
                "--resume: skip the SHA-256 check of the checkpoint files against their trainer.json (for huge files)");
  cmd->callback([a] { run_train(*a); });
}

}  // namespace gta::cli
