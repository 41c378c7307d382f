// Each `gta <command>` lives in its own cmd_<name>.cpp and registers itself on the app here.
#pragma once
#include <CLI/CLI.hpp>

namespace gta::cli {

void register_prepare(CLI::App& app);
void register_info(CLI::App& app);
void register_train(CLI::App& app);
void register_bench(CLI::App& app);
void register_golden_check(CLI::App& app);
void register_eval(CLI::App& app);
void register_generate(CLI::App& app);
void register_plot(CLI::App& app);
void register_analyze(CLI::App& app);
void register_export(CLI::App& app);
void register_import(CLI::App& app);

// The exit status main() returns after a command ran without error (0 unless the command set
// it: `gta train` stopped by a signal exits 128 + its number).
int& exit_status();

}  // namespace gta::cli
