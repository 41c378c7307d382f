// gta plot RUN... [--out FILE.png] [--x tokens|steps]: the training and validation loss curves of
// one or more run directories (their metrics.jsonl) on one picture, for comparing runs by eye.
// The drawing is scripts/plot_runs.py with matplotlib (cli/python_script.h finds the script and
// a Python that has matplotlib, and says what is missing when either is not there).
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/python_script.h"
#include "core/error.h"

namespace gta::cli {

namespace fs = std::filesystem;

namespace {

struct PlotOptions {
  std::vector<std::string> runs;
  std::string out = "loss_curves.png";
  std::string x = "tokens";
};

void run_plot(const PlotOptions& o) {
  for (const auto& run : o.runs) {
    GTA_CHECK(fs::is_directory(run), "gta plot: {} is not a directory (expected a run directory of gta train)", run);
    GTA_CHECK(fs::is_regular_file(fs::path(run) / "metrics.jsonl"),
              "gta plot: {} has no metrics.jsonl (expected a run directory of gta train)", run);
  }
  std::vector<std::string> args = {"--out", o.out, "--x", o.x};
  args.insert(args.end(), o.runs.begin(), o.runs.end());
  run_python_script("plot_runs.py", args, {"matplotlib"});
}

}  // namespace

void register_plot(CLI::App& app) {
  auto o = std::make_shared<PlotOptions>();
  CLI::App* cmd = app.add_subcommand("plot", "Loss and validation-loss curves of runs on one picture (matplotlib)");
  cmd->add_option("runs", o->runs, "Run directories (train.out_dir of gta train)")->required()->expected(1, -1);
  cmd->add_option("--out", o->out, "The picture to write (.png, .pdf, .svg)")->capture_default_str();
  cmd->add_option("--x", o->x, "The x axis: tokens seen or optimizer steps")
      ->check(CLI::IsMember({"tokens", "steps"}))
      ->capture_default_str();
  cmd->callback([o] { run_plot(*o); });
}

}  // namespace gta::cli
