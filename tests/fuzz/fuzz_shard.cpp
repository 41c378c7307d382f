// libFuzzer target: a shard reader (data::open_token_source) on a file named shard<GTA_FUZZ_EXT>:
// built twice, as fuzz_hdf5_shard (".h5") and fuzz_bin_shard (".bin"). Opens the file (header,
// attributes, sizes) and reads its first and last tokens.
#include <vector>

#include "core/error.h"
#include "data/token_source.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = gta_fuzz::write_input(data, size, std::string("shard") + GTA_FUZZ_EXT);
  try {
    auto src = gta::data::open_token_source(path);
    const uint64_t n = src->n_tokens(), k = n < 64 ? n : 64;
    std::vector<int32_t> out(k);
    src->read(0, k, out.data());
    src->read(n - k, k, out.data());
  } catch (const gta::Error&) {
  }
  return 0;
}
