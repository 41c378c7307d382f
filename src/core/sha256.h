// SHA-256 (FIPS 180-4): used to fingerprint tokenizer models and shard lists so that a run
// never silently mixes data encoded with different tokenizers.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gta {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Finishes the hash; the object must not be updated afterwards.
  std::array<uint8_t, 32> digest();
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
  bool done_ = false;
};

// Hex (lowercase, 64 chars) SHA-256 of a byte string.
std::string sha256_hex(std::string_view data);
// Hex SHA-256 of a file's bytes; throws gta::Error naming the file when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace gta
