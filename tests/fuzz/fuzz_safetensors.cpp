// libFuzzer target: the safetensors reader (header validation and tensor reads).
#include "core/error.h"
#include "fuzz_input.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = gta_fuzz::write_input(data, size, "model.safetensors");
  try {
    (void)gta::io::load_safetensors(path);
  } catch (const gta::Error&) {
  }
  return 0;
}
