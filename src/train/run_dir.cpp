#include "train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/chrono.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace gta::train {

namespace fs = std::filesystem;

namespace {

// What a run leaves in its directory; any of them means the directory holds a run.
constexpr const char* kRunEntries[] = {"checkpoints", "metrics.jsonl", "config.yaml"};

std::string read_holder(int fd) {
  char buf[512];
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string s = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.empty() ? "a process that has not written its name yet" : s;
}

std::string holder_text() {
  char host[256] = "?";
  (void)::gethostname(host, sizeof host - 1);
  const auto now = std::chrono::system_clock::now();
  return fmt::format("gta train, pid {} on {}, since {:%Y-%m-%d %H:%M:%S} UTC\n", ::getpid(), host,
                     std::chrono::floor<std::chrono::seconds>(now));
}

}  // namespace

RunDirLock::RunDirLock(const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) fail("train.out_dir {}: cannot create it: {}", out_dir, ec.message());
  const std::string path = (fs::path(out_dir) / kRunLockFile).string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("train.out_dir {}: cannot open the lock file {}: {}", out_dir, path, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = err == EWOULDBLOCK ? read_holder(fd_) : "";
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      fail("train.out_dir {} is in use by another trainer ({}; lock file {}): wait for it to end, or use another "
           "train.out_dir",
           out_dir, holder, path);
    fail("train.out_dir {}: cannot lock {}: {}", out_dir, path, std::strerror(err));
  }
  const std::string me = holder_text();
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size()))
    fail("train.out_dir {}: cannot write the lock file {}: {}", out_dir, path, std::strerror(errno));
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

void claim_fresh_run_dir(const std::string& out_dir, bool overwrite) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const char* e : kRunEntries)
    if (fs::exists(fs::symlink_status(fs::path(out_dir) / e, ec))) found.push_back(e);
  if (found.empty()) return;
  if (!overwrite)
    fail("train.out_dir {} already holds a run ({}): continue it with --resume, start the new run in another "
         "train.out_dir, or replace the old run with --overwrite",
         out_dir, fmt::join(found, ", "));
  for (const std::string& e : found) {
    fs::remove_all(fs::path(out_dir) / e, ec);
    if (ec) fail("--overwrite: cannot delete {}: {}", (fs::path(out_dir) / e).string(), ec.message());
  }
}

}  // namespace gta::train
