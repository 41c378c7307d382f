// The input files of `gta prepare` and their documents, read one at a time: each pass over a corpus holds one
// read chunk and one document, never the corpus, so prepare's memory does not grow with it.
//
// Documents: each JSONL record (field `jsonl_field`) is one document; in plain text files,
// documents are runs of lines separated by blank (whitespace-only) lines, a trailing '\r' of
// the last line dropped (doc_split = "blank-lines"), or each file is one document
// (doc_split = "file"). Empty and whitespace-only documents are skipped; invalid UTF-8 is
// replaced by U+FFFD.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace gta::data {

// Expands inputs: files as given; directories recursively (text/code/JSONL extensions, hidden
// entries skipped), sorted. Throws gta::Error naming an input that is missing or yields nothing.
std::vector<std::string> collect_input_files(const std::vector<std::string>& inputs);

class DocumentReader {
 public:
  // Reads `files` in order, `chunk_bytes` at a time (>= 1).
  DocumentReader(std::vector<std::string> files, std::string jsonl_field, std::string doc_split,
                 size_t chunk_bytes = size_t(1) << 20);

  // The next non-empty document into `doc`; false after the last one. Errors (gta::Error) name
  // the file, and the line for JSONL.
  bool next(std::string& doc);

  uint64_t n_skipped_empty() const { return n_skipped_empty_; }
  uint64_t n_fixed_utf8() const { return n_fixed_utf8_; }  // documents whose UTF-8 was repaired

 private:
  bool next_line(std::string_view& line);  // the current file's next line, without its '\n'
  bool next_raw(std::string& doc);         // the next document before the empty / UTF-8 checks
  bool fill();                             // reads the next chunk into buf_; false at the end
  const std::string& path() const { return files_[file_index_]; }

  std::vector<std::string> files_;
  std::string jsonl_field_, doc_split_;
  size_t chunk_bytes_;
  size_t file_index_ = 0;
  bool open_ = false, jsonl_ = false, eof_ = false;
  std::ifstream in_;
  std::string buf_;   // read but not yet consumed bytes of the current file, from buf_pos_
  size_t buf_pos_ = 0;
  std::string line_;  // a line that spans read chunks
  uint64_t lineno_ = 0;
  uint64_t n_skipped_empty_ = 0, n_fixed_utf8_ = 0;
};

}  // namespace gta::data
