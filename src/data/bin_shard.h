// Reader (and a small writer, for tests and conversions) for llm.c / nanoGPT-style .bin shards:
// a header of 256 little-endian int32 (header[0] = 20240520 magic, header[1] = version:
// 1 -> uint16 tokens, 2 -> uint32 tokens, header[2] = number of tokens), then the tokens.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/token_source.h"

namespace gta::data {

class BinShard : public TokenSource {
 public:
  static constexpr int32_t kMagic = 20240520;
  static constexpr int kHeaderInts = 256;

  explicit BinShard(const std::string& path);
  ~BinShard() override;
  BinShard(const BinShard&) = delete;
  BinShard& operator=(const BinShard&) = delete;

  const std::string& path() const override { return path_; }
  uint64_t n_tokens() const override { return n_tokens_; }
  int version() const { return version_; }
  void read(uint64_t start, uint64_t count, int32_t* out) override;
  // The header's 1024 bytes plus pos tokens of 2 (version 1) or 4 bytes.
  std::string describe_position(uint64_t pos) const override;

 private:
  std::string path_;
  int fd_ = -1;
  int version_ = 1;
  int token_bytes_ = 2;
  uint64_t n_tokens_ = 0;
  std::vector<uint8_t> scratch_;
};

// Writes a .bin shard (version 1 = uint16, version 2 = uint32).
void write_bin_shard(const std::string& path, const std::vector<int32_t>& tokens, int version = 1);

}  // namespace gta::data
