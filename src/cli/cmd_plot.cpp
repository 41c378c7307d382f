// gta plot RUN... [--out FILE.png] [--x tokens|steps]: the training and validation loss curves of
// one or more run directories (their metrics.jsonl) on one picture, for comparing runs by eye.
// The drawing is scripts/plot_runs.py with matplotlib; this command finds the script and a
// Python that has matplotlib, and says what is missing when either is not there.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"

extern char** environ;

namespace gta::cli {

namespace fs = std::filesystem;

namespace {

struct PlotOptions {
  std::vector<std::string> runs;
  std::string out = "loss_curves.png";
  std::string x = "tokens";
};

// Runs argv[0] (looked up on PATH) with argv and returns its exit status (127 when it could not
// be started); its output goes to /dev/null when `quiet`.
int run_program(const std::vector<std::string>& args, bool quiet) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// scripts/plot_runs.py: installed beside the binary (PREFIX/bin/gta -> PREFIX/share/gta/), or in
// the source tree the binary was built from.
std::string find_script() {
  std::vector<fs::path> tried;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) tried.push_back(exe.parent_path().parent_path() / "share" / "gta" / "plot_runs.py");
  tried.push_back(fs::path(GTA_SOURCE_DIR) / "scripts" / "plot_runs.py");
  std::string list;
  for (const auto& p : tried) {
    if (fs::is_regular_file(p)) return p.string();
    list += (list.empty() ? "" : ", ") + p.string();
  }
  fail("gta plot: cannot find its script plot_runs.py (looked at {}); reinstall gta or rebuild it from its sources",
       list);
}

// The first Python that imports matplotlib: $GTA_PYTHON alone when set, else python3 on PATH,
// then Debian's /usr/bin/python3 (python3-matplotlib).
std::string find_python() {
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("GTA_PYTHON"); p && *p) candidates = {p};
  else candidates = {"python3", "/usr/bin/python3"};
  std::string list;
  for (const auto& py : candidates) {
    if (run_program({py, "-c", "import matplotlib"}, true) == 0) return py;
    list += (list.empty() ? "" : ", ") + py;
  }
  fail("gta plot needs Python 3 with matplotlib; none of {} imports it. Install it (Debian/Ubuntu: apt-get install "
       "python3-matplotlib; elsewhere: pip install matplotlib) or set GTA_PYTHON to a Python that has it",
       list);
}

void run_plot(const PlotOptions& o) {
  for (const auto& run : o.runs) {
    GTA_CHECK(fs::is_directory(run), "gta plot: {} is not a directory (expected a run directory of gta train)", run);
    GTA_CHECK(fs::is_regular_file(fs::path(run) / "metrics.jsonl"),
              "gta plot: {} has no metrics.jsonl (expected a run directory of gta train)", run);
  }
  const std::string script = find_script();
  std::vector<std::string> args = {find_python(), script, "--out", o.out, "--x", o.x};
  args.insert(args.end(), o.runs.begin(), o.runs.end());
  const int rc = run_program(args, false);
  GTA_CHECK(rc == 0, "gta plot: {} exited with status {}", script, rc);
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
