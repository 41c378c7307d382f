// libFuzzer target: a checkpoint's trainer.json (train::load_checkpoint reads and checks it first,
// then the SHA-256 digests it records). The .safetensors files beside it are empty, so the seed's
// digests match and a trainer.json that passes every check ends in the empty weights' error.
#include <fstream>

#include "core/error.h"
#include "fuzz_input.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const auto d = gta_fuzz::scratch_dir() / "checkpoints" / "step_000001";
    std::filesystem::create_directories(d);
    for (const char* f : {"model.safetensors", "optimizer.safetensors"}) std::ofstream(d / f);
    return d.string();
  }();
  gta_fuzz::write_input(data, size, "checkpoints/step_000001/trainer.json");
  try {
    (void)gta::train::load_checkpoint(dir);
  } catch (const gta::Error&) {
  }
  return 0;
}
