// The output directory of `gta export --hf` and `gta import`: filled under a temporary name
// beside it (DIR.tmp-<pid>) and renamed into place when complete, so that a failure or a kill
// leaves either the old directory or the new one, never a half-written one. An existing
// non-empty directory is refused unless the caller allows overwriting it.
#pragma once
#include <filesystem>
#include <string>

namespace gta::interop {

class OutputDir {
 public:
  // Checks `dir` (gta::Error when it is a file, or a non-empty directory and !overwrite) and
  // creates the temporary directory. `flag` names the option that allows overwriting, for messages.
  OutputDir(const std::string& dir, bool overwrite, const std::string& flag = "--overwrite");
  ~OutputDir();  // removes the temporary directory unless commit() ran
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  // Where the files go until commit().
  const std::filesystem::path& tmp() const { return tmp_; }
  // Syncs the temporary directory and renames it to `dir` (replacing what was there).
  void commit();

 private:
  std::filesystem::path dir_, tmp_;
  bool committed_ = false;
};

}  // namespace gta::interop
