// libFuzzer target: the YAML run-config loader (config::load_run_config: parse, `base:` include,
// schema, checks). The input is run.yaml in the scratch directory, beside a copy of the tiny
// family's base.yaml, so the seeds' `base: base.yaml` resolves and includes are fuzzed too.
#include <filesystem>

#include "config/config.h"
#include "core/error.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool base_copied = [] {
    std::filesystem::copy_file(GTA_SOURCE_DIR "/configs/models/tiny/base.yaml",
                               gta_fuzz::scratch_dir() / "base.yaml",
                               std::filesystem::copy_options::overwrite_existing);
    return true;
  }();
  (void)base_copied;
  const std::string path = gta_fuzz::write_input(data, size, "run.yaml");
  try {
    (void)gta::config::load_run_config(path);
  } catch (const gta::Error&) {
  }
  return 0;
}
