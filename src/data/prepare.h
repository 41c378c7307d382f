// `gta prepare`: text / JSONL corpus -> SentencePiece tokenizer -> HDF5 train/val shards.
//
// Documents: each JSONL record (field `jsonl_field`) is one document; in plain text files,
// documents are separated by one or more blank lines (doc_split = "blank-lines") or each file
// is one document (doc_split = "file"). Documents are split into train/val deterministically
// from the seed, encoded on all cores, and each is followed by EOS. Output (written to a
// temporary directory, then renamed into place):
//   DIR/tokenizer.model  DIR/train_000000.h5 ...  DIR/val_000000.h5 ...  DIR/prepare.json
#pragma once
#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

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

// Expands inputs: files as given; directories recursively (text/code/JSONL extensions, hidden
// entries skipped), sorted. Throws gta::Error naming an input that is missing or yields nothing.
std::vector<std::string> collect_input_files(const std::vector<std::string>& inputs);

// Documents of one plain-text file: runs of lines separated by blank (whitespace-only) lines.
std::vector<std::string_view> split_blank_line_documents(std::string_view text);

// All documents of the inputs. Views point into `storage` (stable: a deque).
struct Corpus {
  std::deque<std::string> storage;
  std::vector<std::string_view> docs;
  uint64_t n_bytes = 0;
  uint64_t n_skipped_empty = 0;
  uint64_t n_fixed_utf8 = 0;  // documents whose invalid UTF-8 was replaced by U+FFFD
};
void load_corpus(const std::vector<std::string>& files, const std::string& jsonl_field,
                 const std::string& doc_split, Corpus& corpus);

// Deterministic document split: true for validation documents. At least one document goes
// to each side (requires n >= 2).
std::vector<bool> choose_validation(size_t n_docs, double val_fraction, uint64_t seed);

}  // namespace gta::data
