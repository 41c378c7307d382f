// Safetensors files (https://github.com/huggingface/safetensors, format only):
//   [8 bytes: little-endian uint64 N] [N bytes: JSON header, space padded] [data buffer]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the start of the data buffer) and may hold "__metadata__", a map of
// string to string. Checkpoints, exported models and the golden vectors use this format.
//
// Supported dtypes: F32, F64, BF16, I32, I64, U16 (gta::DType f32, f64, bf16, i32, i64, u16).
// Anything malformed (short file, header length beyond the file, bad JSON, offsets out of range,
// overlapping or not matching shape * dtype size, unsupported dtype) is a gta::Error naming the
// file, the tensor and what was expected.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace gta::io {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;           // all on CPU, contiguous
  std::map<std::string, std::string> metadata;     // the header's "__metadata__"
};

// One tensor's header entry, as described by the file (nothing read from the data buffer).
struct SafetensorsEntry {
  DType dtype = DType::f32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data buffer
};

// The parsed and validated header alone: for `gta info` on a checkpoint and other quick looks.
struct SafetensorsHeader {
  std::map<std::string, SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
  uint64_t header_bytes = 0;  // N
  uint64_t data_bytes = 0;    // file size - 8 - N
};

// Reads and validates the header only.
SafetensorsHeader read_safetensors_header(const std::string& path);

// Reads the whole file. Tensors are created on CPU with their stored dtype.
SafetensorsFile load_safetensors(const std::string& path);

// Writes tensors in sorted-name order, each copied to CPU and made contiguous, header padded with
// spaces to a multiple of 8 bytes. Writes `path + ".tmp"`, syncs it, then renames it over `path`,
// so an existing file is never lost or half-written; write errors (disk full) are a gta::Error.
// Returns the SHA-256 (hex) of the bytes written, hashed as they are written.
std::string save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// "F32", "BF16", ... for a gta dtype; and the inverse (throws naming `what` when unsupported).
const char* safetensors_dtype_name(DType t);
DType dtype_from_safetensors_name(const std::string& name, const std::string& what);

}  // namespace gta::io
