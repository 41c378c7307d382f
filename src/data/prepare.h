// `gta prepare`: text / JSONL corpus -> SentencePiece tokenizer -> HDF5 train/val shards.
//
// Documents (data/document_reader.h) are split into train/val deterministically from the seed,
// encoded on all cores, and each is followed by EOS. The corpus is streamed, never held: each
// pass reads it anew (count, the tokenizer's two, encode), and the documents in flight between
// reading and writing hold at most buffer_bytes. Memory is that buffer, the tokenizer's sample
// (tokenizer_sentences lines) and the largest document; what grows with the corpus is only the
// split's 8 bytes per document while it is chosen, then 1 bit. Output (written to a temporary
// directory, then renamed into place):
//   DIR/tokenizer.model  DIR/train_000000.h5 ...  DIR/val_000000.h5 ...  DIR/prepare.json
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/document_reader.h"

namespace gta::data {

struct PrepareOptions {
  std::vector<std::string> inputs;   // files, directories (recursive) or JSONL files
  std::string out_dir;
  int vocab_size = 8192;             // used when training a tokenizer
  std::string tokenizer;             // existing SentencePiece model; empty: train one
  std::string model_type = "bpe";    // bpe | unigram (training only)
  int64_t tokenizer_sentences = 500'000;  // lines sampled to train the tokenizer
  double val_fraction = 0.1;
  std::string jsonl_field = "text";
  uint64_t seed = 1337;
  uint64_t shard_tokens = 100'000'000;  // start a new shard (at a document boundary) past this
  std::string doc_split = "blank-lines";  // blank-lines | file
  int threads = 0;                   // 0: all hardware cores
  uint64_t buffer_bytes = uint64_t(256) << 20;  // documents in flight (text, then tokens); output
                                                // does not depend on it
  bool force = false;                // replace a non-empty out_dir
  bool progress = true;              // progress lines on stderr
  bool verbose = false;              // SentencePiece's own logging
  std::string command_line;          // recorded in prepare.json
};

struct SplitStats {
  std::vector<std::string> shards;  // file names inside out_dir
  uint64_t n_documents = 0, n_tokens = 0, n_bytes = 0;
};

struct PrepareResult {
  std::string tokenizer_sha256;
  int vocab_size = 0;
  std::vector<std::string> input_files;
  SplitStats train, val;
  nlohmann::json manifest;  // what prepare.json holds
};

PrepareResult prepare(const PrepareOptions& opts);

// ---- pieces, exposed for tests --------------------------------------------------------

// Deterministic document split: true for validation documents. At least one document goes
// to each side (requires n >= 2).
std::vector<bool> choose_validation(size_t n_docs, double val_fraction, uint64_t seed);

}  // namespace gta::data
