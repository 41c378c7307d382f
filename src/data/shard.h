// HDF5 token shards. Layout of one shard file:
//   dataset  /tokens       1-D uint16 (vocab <= 65536) or uint32, chunked, shuffle + deflate
//   dataset  /doc_offsets  1-D uint64, start token of each document (optional for readers)
//   attrs on /: tokenizer_sha256 (string), n_tokens, n_bytes (UTF-8 bytes of the encoded
//               text), n_documents, vocab_size (integers), format ("gta-tokens-1")
// Every document's tokens end with EOS, so boundaries survive even without doc_offsets.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/token_source.h"

namespace gta::data {

struct ShardMeta {
  std::string tokenizer_sha256;
  uint64_t vocab_size = 0;
  uint64_t n_tokens = 0;
  uint64_t n_bytes = 0;
  uint64_t n_documents = 0;
};

class ShardWriter {
 public:
  // Creates (truncates) `path`. Tokens are stored as uint16 when vocab_size <= 65536.
  ShardWriter(const std::string& path, uint64_t vocab_size, const std::string& tokenizer_sha256,
              uint64_t chunk_tokens = kDefaultChunkTokens, int deflate_level = 1);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Appends one document (its tokens, EOS included) that encodes `n_bytes` bytes of text.
  void add_document(const int32_t* tokens, size_t n, uint64_t n_bytes);
  void add_document(const std::vector<int32_t>& tokens, uint64_t n_bytes) {
    add_document(tokens.data(), tokens.size(), n_bytes);
  }
  // Flushes buffered tokens, writes attributes and closes the file. Called by the destructor
  // too (errors there are swallowed: call close() to see them).
  void close();

  const ShardMeta& meta() const { return meta_; }
  const std::string& path() const { return path_; }

  // 16Ki tokens (32 KiB as uint16): a random T+1 window decompresses at most two small chunks.
  static constexpr uint64_t kDefaultChunkTokens = 1 << 14;

 private:
  void flush();
  std::string path_;
  ShardMeta meta_;
  bool wide_ = false;  // uint32 storage
  uint64_t chunk_tokens_;
  int64_t file_ = -1, dset_ = -1;
  uint64_t written_ = 0;
  std::vector<uint32_t> buf_;
  std::vector<uint64_t> doc_offsets_;
};

// Reader: opens the file and validates layout and attributes without loading the tokens.
class H5Shard : public TokenSource {
 public:
  explicit H5Shard(const std::string& path);
  ~H5Shard() override;
  H5Shard(const H5Shard&) = delete;
  H5Shard& operator=(const H5Shard&) = delete;

  const std::string& path() const override { return path_; }
  uint64_t n_tokens() const override { return meta_.n_tokens; }
  uint64_t n_bytes() const override { return meta_.n_bytes; }
  uint64_t n_documents() const override { return meta_.n_documents; }
  uint64_t vocab_size() const override { return meta_.vocab_size; }
  std::string tokenizer_sha256() const override { return meta_.tokenizer_sha256; }
  const ShardMeta& meta() const { return meta_; }
  // Bytes per stored token (2 or 4).
  int token_bytes() const { return token_bytes_; }
  // Start token of each document (empty if the shard has no doc_offsets dataset).
  std::vector<uint64_t> doc_offsets();

  void read(uint64_t start, uint64_t count, int32_t* out) override;

 private:
  std::string path_;
  ShardMeta meta_;
  int token_bytes_ = 2;
  int64_t file_ = -1, dset_ = -1;
  std::vector<uint32_t> scratch_;
};

// Convenience for tests and tools: writes `tokens` as one document.
void write_shard(const std::string& path, const std::vector<int32_t>& tokens, uint64_t vocab_size,
                 const std::string& tokenizer_sha256 = "", uint64_t n_bytes = 0,
                 uint64_t chunk_tokens = ShardWriter::kDefaultChunkTokens);

}  // namespace gta::data
