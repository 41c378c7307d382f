#include "infer/tokenizer_lookup.h"

#include <filesystem>
#include <vector>

namespace gta::infer {

namespace fs = std::filesystem;

std::string find_tokenizer(const std::string& weights_path) {
  const fs::path dir = fs::absolute(fs::path(weights_path)).parent_path();
  std::vector<fs::path> dirs = {dir};
  if (dir.parent_path().filename() == "checkpoints") {  // <run>/checkpoints/step_N/
    dirs.push_back(dir.parent_path());
    dirs.push_back(dir.parent_path().parent_path());
  }
  std::error_code ec;
  for (const fs::path& d : dirs)
    if (fs::is_regular_file(d / "tokenizer.model", ec)) return (d / "tokenizer.model").string();
  return "";
}

}  // namespace gta::infer
