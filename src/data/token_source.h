// TokenSource: a read-only, random-access view of one file of token ids. Implemented by HDF5
// shards (shard.h, written by `gta prepare`) and llm.c/nanoGPT .bin shards (bin_shard.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace gta::data {

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual const std::string& path() const = 0;
  virtual uint64_t n_tokens() const = 0;
  // UTF-8 bytes of the source text these tokens encode; 0 when unknown (.bin shards).
  virtual uint64_t n_bytes() const { return 0; }
  virtual uint64_t n_documents() const { return 0; }
  // Tokenizer vocabulary size recorded in the file; 0 when unknown.
  virtual uint64_t vocab_size() const { return 0; }
  // Hex SHA-256 of the tokenizer model that produced the tokens; empty when unknown.
  virtual std::string tokenizer_sha256() const { return {}; }
  // Where token `pos` lies in the file, for messages: " (byte offset N)" for a flat file, ""
  // when the file is compressed in chunks (HDF5: the position alone finds it).
  virtual std::string describe_position(uint64_t pos) const { return {}; }
  // Copies tokens [start, start + count) into out; throws gta::Error naming the file when the
  // range is out of bounds or the read fails.
  virtual void read(uint64_t start, uint64_t count, int32_t* out) = 0;
};

// Opens a shard by extension: .h5 / .hdf5 (HDF5 shard) or .bin (llm.c header + tokens).
std::unique_ptr<TokenSource> open_token_source(const std::string& path);

// True when `path` has an extension open_token_source understands.
bool is_token_file(const std::string& path);

}  // namespace gta::data
