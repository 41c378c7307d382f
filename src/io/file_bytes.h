// The whole contents of a small file (a config.json, a tokenizer model) as bytes.
#pragma once
#include <string>

namespace gta::io {

// The bytes of a whole file; gta::Error naming it when it cannot be opened or read.
std::string read_file_bytes(const std::string& path);

}  // namespace gta::io
