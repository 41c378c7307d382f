// Running the repository's Python scripts (scripts/*.py) from a gta subcommand: the pictures of
// `gta plot` and `gta analyze`. A script is looked for where `cmake --install` puts it
// (PREFIX/bin/gta -> PREFIX/share/gta/), in the scripts/ beside the binary's build directory
// (<exe dir>/../scripts), then in the source tree gta was built from. The interpreter is
// $GTA_PYTHON alone when it is set, else the first of `python3` on PATH and /usr/bin/python3 that
// imports the modules the script needs.
#pragma once
#include <string>
#include <vector>

namespace gta::cli {

// Runs `python3 <script> args...` and waits. Throws gta::Error when the script or a Python with
// `modules` (e.g. {"matplotlib"}) is not found, or when the script fails.
void run_python_script(const std::string& script, const std::vector<std::string>& args,
                       const std::vector<std::string>& modules);

// The path of the script (see above); throws gta::Error naming the places looked at.
std::string find_script(const std::string& script);

}  // namespace gta::cli
