#include "cli/python_script.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"

extern char** environ;

namespace gta::cli {

namespace fs = std::filesystem;

namespace {

// Runs argv (looked up on PATH) and returns its exit status (-1 when it could not start or was
// killed). quiet: its stdout and stderr go to /dev/null.
int run_process(const std::vector<std::string>& argv, bool quiet) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

}  // namespace

std::string find_script(const std::string& script) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    dirs.push_back(exe.parent_path().parent_path() / "share" / "gta");
    dirs.push_back(exe.parent_path().parent_path() / "scripts");
  }
  dirs.emplace_back(GTA_SCRIPTS_DIR);  // the source tree this binary was built from (CMakeLists.txt)
  std::string looked;
  for (const fs::path& d : dirs) {
    const fs::path p = d / script;
    if (fs::is_regular_file(p)) return p.string();
    looked += (looked.empty() ? "" : ", ") + p.string();
  }
  fail("scripts/{} not found (looked at {})", script, looked);
}

void run_python_script(const std::string& script, const std::vector<std::string>& args,
                       const std::vector<std::string>& modules) {
  const std::string path = find_script(script);
  std::string imports = "import ";
  for (size_t i = 0; i < modules.size(); ++i) imports += (i ? ", " : "") + modules[i];
  std::vector<std::string> candidates = {"python3", "/usr/bin/python3"};
  if (const char* p = std::getenv("GTA_PYTHON"); p && *p) candidates = {p};
  std::string python, tried;
  for (const std::string& candidate : candidates) {
    if (run_process({candidate, "-c", imports}, true) == 0) {
      python = candidate;
      break;
    }
    tried += (tried.empty() ? "" : ", ") + candidate;
  }
  GTA_CHECK(!python.empty(),
            "{} needs a python3 that can `{}` (none of {} can; on Debian/Ubuntu: apt install python3-matplotlib, or "
            "run scripts/setup.sh; or set GTA_PYTHON to a Python that has it)",
            path, imports, tried);
  std::vector<std::string> argv = {python, path};
  argv.insert(argv.end(), args.begin(), args.end());
  const int rc = run_process(argv, false);
  GTA_CHECK(rc == 0, "{} {} failed (exit status {})", python, path, rc);
}

}  // namespace gta::cli
