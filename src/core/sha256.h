// SHA-256 (FIPS 180-4) through OpenSSL's libcrypto: fingerprints tokenizer models and shard lists
// (a run never silently mixes data encoded with different tokenizers) and checkpoint files (a
// flipped byte is refused on load).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace gta {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Finishes the hash; the object must not be updated afterwards.
  std::array<uint8_t, 32> digest();
  std::string hex_digest();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

// Hex (lowercase, 64 chars) SHA-256 of a byte string.
std::string sha256_hex(std::string_view data);
// Hex SHA-256 of a file's bytes; throws gta::Error naming the file when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace gta
