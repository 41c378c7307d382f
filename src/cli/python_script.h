// Running the repository's Python scripts (scripts/*.py) from a gta subcommand, e.g. the plots
// of `gta analyze`. The script is looked for in the source tree's scripts/ beside the binary's
// build directory (<exe dir>/../scripts), then in the source tree gta was built from; the
// interpreter is the first of `python3` on PATH and /usr/bin/python3 that imports the modules
// the script needs.
#pragma once
#include <string>
#include <vector>

namespace gta::cli {

// Runs `python3 scripts/<script> args...` and waits. Throws gta::Error when the script or a
// Python with `modules` (e.g. {"matplotlib"}) is not found, or when the script fails.
void run_python_script(const std::string& script, const std::vector<std::string>& args,
                       const std::vector<std::string>& modules);

// The path of scripts/<script> (see above); throws gta::Error when it is not found.
std::string find_script(const std::string& script);

}  // namespace gta::cli
