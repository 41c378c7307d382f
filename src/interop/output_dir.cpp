#include "interop/output_dir.h"

#include <unistd.h>

#include "core/error.h"
#include "core/durable_file.h"

namespace gta::interop {

namespace fs = std::filesystem;

OutputDir::OutputDir(const std::string& dir, bool overwrite, const std::string& flag)
    : dir_(fs::path(dir).lexically_normal()) {
  std::error_code ec;
  GTA_CHECK(!dir.empty(), "the output directory is empty");
  if (!dir_.has_filename()) dir_ = dir_.parent_path();  // "out/" -> "out"
  if (fs::exists(fs::symlink_status(dir_, ec))) {
    GTA_CHECK(fs::is_directory(dir_, ec), "{}: exists and is not a directory", dir);
    GTA_CHECK(overwrite || fs::is_empty(dir_, ec),
              "{}: the output directory exists and is not empty; pass {} to replace it", dir, flag);
  }
  const fs::path parent = dir_.has_parent_path() ? dir_.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  GTA_CHECK(fs::is_directory(parent, ec), "cannot create {}: {}", parent.string(),
            ec ? ec.message() : "exists and is not a directory");
  tmp_ = parent / (dir_.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp_, ec);  // a leftover of this very process id
  if (!fs::create_directory(tmp_, ec) || ec)
    fail("cannot create {}: {}", tmp_.string(), ec ? ec.message() : "already exists");
}

OutputDir::~OutputDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

void OutputDir::commit() {
  sync_dir(tmp_.string());
  install_dir(tmp_.string(), dir_.string());
  committed_ = true;
}

}  // namespace gta::interop
