// `gta eval --per-token FILE`: the loss of every scored target and of every document, as JSON
// lines (docs/formats.md, "Per-token losses"), after a first line naming the shards:
//   {"type": "shards", "shards": ["data/val_000000.h5"], "eos_id": 2}
//   {"type": "token", "shard": 0, "pos": 17, "token": 42, "loss": 2.31, "doc": 3}
//   {"type": "document", "shard": 0, "doc": 3, "first": 12, "last": 30, "tokens": 19,
//    "loss_sum": 40.2, "loss": 2.11, "complete": true}
// A document ends with its end-of-document token (gta's shards end each document with EOS; an
// llm.c .bin shard starts each one with its <|endoftext|> delimiter, which is equally the target
// that closes the document before it): its line follows its last token's. Documents are numbered
// per shard from 0; the shard's first token is never a target, so document 0 lacks it. A document
// whose closing token was not scored (the end of the evaluated windows, or of the shard) is
// written with "complete": false. Without a known end-of-document id every shard is one
// document. The file is written under FILE.tmp and renamed when complete.
#pragma once
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "infer/evaluate.h"

namespace gta::infer {

class PerTokenLog {
 public:
  // `shards`: the evaluated files (TokenLoss::shard indexes them); `eos_id` < 0: no document
  // boundaries. Throws gta::Error naming the file when it cannot be created.
  PerTokenLog(const std::string& path, int eos_id, const std::vector<std::string>& shards);
  ~PerTokenLog();  // removes the temporary file unless finish() ran
  PerTokenLog(const PerTokenLog&) = delete;
  PerTokenLog& operator=(const PerTokenLog&) = delete;

  void add(const TokenLoss& t);
  // Writes the open document (incomplete), syncs the file and renames it into place.
  void finish();

 private:
  void close_document(bool complete);
  void write(const nlohmann::json& line);
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  int eos_id_;
  bool open_ = false;  // a document has tokens not yet summarised
  size_t shard_ = 0;
  uint64_t doc_ = 0, first_ = 0, last_ = 0, n_ = 0;
  double sum_ = 0;
};

}  // namespace gta::infer
