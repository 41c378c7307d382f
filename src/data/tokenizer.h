// Tokenizer: a thin wrapper around a SentencePiece model (BPE or unigram, byte fallback on so
// that any UTF-8 text encodes, identity normalization so decode(encode(s)) == s).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace gta::data {

struct TokenizerTrainOptions {
  std::string model_type = "bpe";      // "bpe" or "unigram"
  uint64_t seed = 0;                   // seeds SentencePiece's sentence sampling
  int64_t max_sentences = 500'000;     // cap on training lines (deterministic sample)
  int num_threads = 0;                 // 0: all cores (bpe), 16 (unigram: machine-independent)
  double character_coverage = 0.9995;  // rare characters fall back to bytes
  bool verbose = false;                // let SentencePiece log to stderr
};

class Tokenizer {
 public:
  Tokenizer() = default;

  // Loads a SentencePiece .model file; throws gta::Error naming the file when it is missing
  // or not a valid model.
  static Tokenizer load(const std::string& path);

  // Trains a model on in-memory documents and writes <model_prefix>.model and .vocab.
  // Lines of each document are the training sentences (very long lines are cut into pieces).
  // Deterministic for a given seed. The EOS piece is </s> (id 2), BOS <s> (1), UNK <unk> (0).
  static void train(const std::vector<std::string>& documents, int vocab_size,
                    const std::string& model_prefix, const TokenizerTrainOptions& opts = {});
  static void train(const std::vector<std::string_view>& documents, int vocab_size,
                    const std::string& model_prefix, const TokenizerTrainOptions& opts = {});
  // Same, on the documents that for_each_document passes to its visitor: called twice (to count
  // lines, then to sample them), presenting the same documents in the same order each time, so a
  // corpus can be streamed from disk rather than held.
  using DocumentVisitor = std::function<void(std::string_view)>;
  static void train(const std::function<void(const DocumentVisitor&)>& for_each_document, int vocab_size,
                    const std::string& model_prefix, const TokenizerTrainOptions& opts = {});
  // Same, reading the training text from files.
  static void train_from_files(const std::vector<std::string>& files, int vocab_size,
                               const std::string& model_prefix,
                               const TokenizerTrainOptions& opts = {});

  bool loaded() const { return sp_ != nullptr; }
  std::vector<int32_t> encode(std::string_view text) const;
  // Appends the ids of `text` to `out` (no allocation of a fresh vector per call).
  void encode_append(std::string_view text, std::vector<int32_t>& out) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  std::string id_to_piece(int32_t id) const;

  int vocab_size() const;
  int eos_id() const;
  int bos_id() const;
  int unk_id() const;
  // Hex SHA-256 of the model file's bytes: shards record it so mismatches are caught.
  const std::string& checksum() const { return checksum_; }
  const std::string& path() const { return path_; }
  // The serialized model (the exact bytes of the .model file).
  const std::string& model_bytes() const { return bytes_; }

 private:
  std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_, checksum_, bytes_;
};

}  // namespace gta::data
