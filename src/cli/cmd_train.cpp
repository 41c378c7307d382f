// gta train CONFIG.yaml [--set section.key=value ...] [--resume]
#include <cstdio>

#include "cli/commands.h"
#include "train/trainer.h"

namespace gta::cli {

namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  bool resume = false;
};

void run_train(const TrainArgs& a) {
  train::TrainOptions o;
  o.config = config::load_run_config(a.config, a.overrides);
  o.config_source = a.config;
  o.resume = a.resume;
  train::install_stop_signal_handlers();
  train::TrainSummary s = train::run_training(o);
  if (!s.lead) return;
  std::printf("trained %lld steps: train loss %.4f", static_cast<long long>(s.steps_done), s.final_train_loss);
  if (s.final_val_loss >= 0) std::printf(", val loss %.4f, %.3f bits/byte", s.final_val_loss, s.final_val_bpb);
  std::printf("\ncheckpoint: %s\n", s.last_checkpoint.c_str());
}

}  // namespace

void register_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model from a YAML config");
  cmd->add_option("config", a->config, "run config (YAML)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", a->overrides, "override a config key: section.key=value (repeatable)");
  cmd->add_flag("--resume", a->resume, "continue from the newest checkpoint in train.out_dir");
  cmd->callback([a] { run_train(*a); });
}

}  // namespace gta::cli
