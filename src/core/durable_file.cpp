#include "core/durable_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace gta {

namespace fs = std::filesystem;

namespace {

// Writes all of buf to fd or throws naming `path` (short writes and EINTR are retried; a write
// of 0 bytes is a full disk).
void write_all(int fd, const void* buf, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed ({})", path, errno_str());
    }
    if (w == 0) fail("{}: write made no progress (disk full?)", path);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// fsync then close; throws naming `path` (the descriptor is closed either way).
void sync_and_close(int fd, const std::string& path) {
  if (::fsync(fd) != 0) {
    const std::string err = errno_str();
    ::close(fd);
    fail("{}: fsync failed ({})", path, err);
  }
  if (::close(fd) != 0) fail("{}: close failed ({})", path, errno_str());
}

int create_for_writing(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("{}: cannot open for writing ({})", path, errno_str());
  return fd;
}

std::string parent_dir(const std::string& path) {
  const std::string parent = fs::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

}  // namespace

DurableFile::DurableFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
  fd_ = create_for_writing(tmp_);
}

DurableFile::~DurableFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());  // not committed
}

void DurableFile::write(const void* data, size_t n) { write_all(fd_, data, n, tmp_); }

void DurableFile::commit() {
  const int fd = fd_;
  fd_ = -1;
  sync_and_close(fd, tmp_);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("{}: cannot rename {} to it ({})", path_, tmp_, errno_str());
  tmp_.clear();
  sync_dir(parent_dir(path_));
}

void write_file_durable(const std::string& path, std::string_view text) {
  DurableFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

void write_file_synced(const std::string& path, std::string_view text) {
  const int fd = create_for_writing(path);
  try {
    write_all(fd, text.data(), text.size(), path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  sync_and_close(fd, path);
}

void sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

void install_dir(const std::string& tmp, const std::string& final) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(final, ec))) {
    if (::rename(tmp.c_str(), final.c_str()) != 0) fail("cannot rename {} to {}: {}", tmp, final, errno_str());
  } else if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(tmp, ec);  // now holds the replaced directory
  } else {
    const std::string old = final + ".old-" + std::to_string(::getpid());
    fs::remove_all(old, ec);
    if (::rename(final.c_str(), old.c_str()) != 0)
      fail("cannot move the existing {} aside to {}: {}", final, old, errno_str());
    if (::rename(tmp.c_str(), final.c_str()) != 0) {
      const std::string err = errno_str();
      (void)::rename(old.c_str(), final.c_str());  // put the old one back
      fail("cannot rename {} to {}: {}", tmp, final, err);
    }
    fs::remove_all(old, ec);
  }
  sync_dir(parent_dir(final));
}

}  // namespace gta
