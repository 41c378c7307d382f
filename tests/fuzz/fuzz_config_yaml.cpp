// libFuzzer target: the YAML run-config loader (config::load_run_config: parse, schema, checks).
#include "config/config.h"
#include "core/error.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = gta_fuzz::write_input(data, size, "run.yaml");
  try {
    (void)gta::config::load_run_config(path);
  } catch (const gta::Error&) {
  }
  return 0;
}
