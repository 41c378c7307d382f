// The `gta` command: subcommands for data preparation, training, evaluation and inspection.
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include "cli/commands.h"
#include "core/error.h"
#include "distributed/communicator.h"

int main(int argc, char** argv) {
  try {
    gta::dist::set_rank_env_defaults(gta::dist::detect_launch_env());
  } catch (const gta::Error& e) {  // a malformed launcher variable
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  // libgomp reads OMP_WAIT_POLICY once, when it is loaded. Its default lets idle workers spin,
  // which on a machine shared with other processes (CI, a laptop, ctest --parallel) burns most
  // of the CPU waiting at barriers. Unless the user chose a policy, wait passively: set it and
  // run this program again with the same arguments (if exec fails we simply carry on).
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
  }
  CLI::App app{"gta: train and evaluate decoder language models with grouped-head latent attention"};
  app.require_subcommand(1);
  gta::cli::register_prepare(app);
  gta::cli::register_info(app);
  gta::cli::register_train(app);
  gta::cli::register_bench(app);
  gta::cli::register_golden_check(app);
  gta::cli::register_eval(app);
  gta::cli::register_generate(app);
  gta::cli::register_plot(app);
  gta::cli::register_analyze(app);
  gta::cli::register_export(app);
  gta::cli::register_import(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const gta::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return gta::cli::exit_status();
}
