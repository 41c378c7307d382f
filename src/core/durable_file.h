// Files and directories that appear whole or not at all, and stay after a crash or power loss:
// written under a temporary name, flushed to the disk (fsync), then renamed over the final name,
// and the rename itself made durable by an fsync of the parent directory. A reader sees the old
// version or the new one, never a torn file (checkpoints, safetensors, metrics.jsonl rewrites,
// `gta prepare` outputs).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace gta {

// A file written at `path + ".tmp"` and renamed to `path` by commit(): write() the contents, then
// commit(). Destroyed without commit() (an exception on the way), the temporary is removed and an
// existing `path` is untouched.
class DurableFile {
 public:
  explicit DurableFile(std::string path);
  DurableFile(const DurableFile&) = delete;
  DurableFile& operator=(const DurableFile&) = delete;
  ~DurableFile();
  // Appends n bytes (short writes and EINTR retried); throws on failure.
  void write(const void* data, size_t n);
  // fsync, close, rename over `path`, fsync of the parent directory.
  void commit();
  const std::string& temp_path() const { return tmp_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

// `text` as the whole of `path`, through a DurableFile.
void write_file_durable(const std::string& path, std::string_view text);

// `text` as the whole of `path`, written in place and fsynced (no rename): for a file inside a
// temporary directory that is itself renamed into place (install_dir).
void write_file_synced(const std::string& path, std::string_view text);

// Best effort fsync of a directory, making renames and new entries in it durable (some
// filesystems refuse it: ignored).
void sync_dir(const std::string& dir);

// Moves the finished temporary directory `tmp` to `final`, then syncs `final`'s parent. An
// existing `final` is exchanged with it atomically (renameat2 RENAME_EXCHANGE) and then deleted;
// where the filesystem cannot exchange, it is moved aside to `final.old-<pid>` first (and put back
// if the rename fails). Only the rename is synced: syncing what `tmp` holds first is the caller's
// part (save_checkpoint does).
void install_dir(const std::string& tmp, const std::string& final);

}  // namespace gta
