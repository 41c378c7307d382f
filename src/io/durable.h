// Durable writes: a file's bytes are on disk (fsync) before anything points at it, and a
// directory is filled under a temporary name and renamed into place, so a crash never leaves a
// half-written file or directory behind. Checkpoints (train/checkpoint.cpp) and the Hugging Face
// export and import (interop/) use these; safetensors files have their own (io/safetensors.h).
#pragma once
#include <filesystem>
#include <string>

namespace gta::io {

// Creates (or truncates) `path`, writes `bytes`, fsyncs and closes it; errors (gta::Error) name
// the path and the cause.
void write_file_synced(const std::string& path, const std::string& bytes);

// The bytes of a whole file; gta::Error naming it when it cannot be read.
std::string read_file_bytes(const std::string& path);

// Best effort: makes a rename or new entries in `dir` durable (some filesystems refuse; ignored).
void sync_dir(const std::filesystem::path& dir);

// Moves the finished temporary directory `tmp` to `final`; an existing `final` is exchanged
// atomically (or, where the filesystem cannot, moved aside first) and then deleted.
void install_dir(const std::filesystem::path& tmp, const std::filesystem::path& final);

}  // namespace gta::io
