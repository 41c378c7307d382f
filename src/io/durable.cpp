#include "io/durable.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace gta::io {

namespace fs = std::filesystem;

namespace {
std::string errno_str() { return std::strerror(errno); }
}  // namespace

void write_file_synced(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create {}: {}", path, errno_str());
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string err = errno_str();
      ::close(fd);
      fail("cannot write {}: {}", path, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const std::string err = errno_str();
    ::close(fd);
    fail("cannot sync {}: {}", path, err);
  }
  if (::close(fd) != 0) fail("cannot close {}: {}", path, errno_str());
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open: {}", path, errno_str());
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("{}: read error", path);
  return ss.str();
}

void sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

void install_dir(const fs::path& tmp, const fs::path& final) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(final, ec))) {
    if (::rename(tmp.c_str(), final.c_str()) != 0) fail("cannot rename {} to {}: {}", tmp.string(), final.string(), errno_str());
    return;
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(tmp, ec);  // now holds the replaced directory
    return;
  }
  const fs::path old = final.string() + ".old-" + std::to_string(::getpid());
  fs::remove_all(old, ec);
  if (::rename(final.c_str(), old.c_str()) != 0)
    fail("cannot move the existing {} aside to {}: {}", final.string(), old.string(), errno_str());
  if (::rename(tmp.c_str(), final.c_str()) != 0) {
    const std::string err = errno_str();
    (void)::rename(old.c_str(), final.c_str());  // put the old one back
    fail("cannot rename {} to {}: {}", tmp.string(), final.string(), err);
  }
  fs::remove_all(old, ec);
}

}  // namespace gta::io
