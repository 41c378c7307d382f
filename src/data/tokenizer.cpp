#include "data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "core/sha256.h"
#include "data/rng.h"

// Exported by libsentencepiece but not declared in its public headers.
namespace sentencepiece::logging {
int GetMinLogLevel();
void SetMinLogLevel(int v);
}  // namespace sentencepiece::logging

namespace gta::data {
namespace {

std::string read_file_bytes(const std::string& path, const char* what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail("{} {} does not exist", what, path);
  if (std::filesystem::is_directory(path, ec)) fail("{} {} is a directory, expected a file", what, path);
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open {} {}", what, path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("read error on {} {}", what, path);
  return std::move(ss).str();
}

// Training sentences for SentencePiece are lines. Lines longer than this are cut (at a space
// when possible, never inside a UTF-8 character) so SentencePiece does not drop them.
constexpr size_t kMaxLine = 4000;

// Calls fn(line) for each non-empty training line of `doc`.
template <typename Fn>
void for_each_line(std::string_view doc, Fn&& fn) {
  size_t pos = 0;
  while (pos < doc.size()) {
    size_t nl = doc.find('\n', pos);
    if (nl == std::string_view::npos) nl = doc.size();
    std::string_view line = doc.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    while (line.size() > kMaxLine) {
      size_t cut = line.rfind(' ', kMaxLine);
      if (cut == std::string_view::npos || cut < kMaxLine / 2) {
        cut = kMaxLine;
        while (cut > 0 && (uint8_t(line[cut]) & 0xC0) == 0x80) --cut;  // continuation byte
        if (cut == 0) cut = kMaxLine;
      }
      fn(line.substr(0, cut));
      line.remove_prefix(cut);
    }
    if (!line.empty()) fn(line);
  }
}

// Feeds SentencePiece a deterministic sample of at most ~max_lines lines. `docs` is called
// with a visitor and must present the same documents in the same order on every call.
using DocSource = std::function<void(const std::function<void(std::string_view)>&)>;

class LineIterator : public sentencepiece::SentenceIterator {
 public:
  LineIterator(const DocSource& docs, int64_t max_lines, uint64_t seed) {
    int64_t total = 0;
    docs([&](std::string_view d) { for_each_line(d, [&](std::string_view) { ++total; }); });
    double p = (max_lines > 0 && total > max_lines) ? double(max_lines) / double(total) : 1.0;
    int64_t idx = 0;
    docs([&](std::string_view d) {
      for_each_line(d, [&](std::string_view line) {
        uint64_t s = mix_seed(seed, uint64_t(idx++));
        double u = double(splitmix64(s) >> 11) * 0x1.0p-53;
        if (u < p) lines_.emplace_back(line);
      });
    });
  }
  bool done() const override { return i_ >= lines_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return lines_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }
  size_t size() const { return lines_.size(); }

 private:
  std::vector<std::string> lines_;
  size_t i_ = 0;
};

// ---- canonical model bytes --------------------------------------------------------------
// SentencePiece stores its TrainerSpec inside the model, including the output path
// (model_prefix), the input file names and num_threads. Those do not change how text encodes,
// but they would make the model's SHA-256 (which shards record) depend on the temporary
// directory and the machine. We drop them with a minimal protobuf wire-format rewrite:
// ModelProto field 2 is trainer_spec; in TrainerSpec, 1 = input, 2 = model_prefix,
// 16 = num_threads.

bool read_varint(std::string_view s, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && pos < s.size(); shift += 7) {
    uint8_t b = uint8_t(s[pos++]);
    v |= uint64_t(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

void write_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) { out.push_back(char(v | 0x80)); v >>= 7; }
  out.push_back(char(v));
}

// Copies the fields of one message, dropping `drop` and passing field `nested` (a message)
// through `rewrite_nested`. Returns false on malformed input.
template <typename F>
bool rewrite_fields(std::string_view in, std::string& out, std::initializer_list<uint64_t> drop,
                    uint64_t nested, F&& rewrite_nested) {
  size_t pos = 0;
  while (pos < in.size()) {
    size_t start = pos;
    uint64_t key, v;
    if (!read_varint(in, pos, key)) return false;
    uint64_t field = key >> 3, wt = key & 7;
    size_t body = pos;
    switch (wt) {
      case 0: if (!read_varint(in, pos, v)) return false; break;
      case 1: pos += 8; break;
      case 5: pos += 4; break;
      case 2:
        if (!read_varint(in, pos, v) || v > in.size() - pos) return false;
        body = pos;
        pos += size_t(v);
        break;
      default: return false;
    }
    if (pos > in.size()) return false;
    if (std::find(drop.begin(), drop.end(), field) != drop.end()) continue;
    if (wt == 2 && field == nested) {
      std::string sub;
      if (!rewrite_nested(in.substr(body, pos - body), sub)) return false;
      write_varint(out, key);
      write_varint(out, sub.size());
      out += sub;
    } else {
      out.append(in.substr(start, pos - start));
    }
  }
  return true;
}

std::string canonical_model_bytes(const std::string& bytes) {
  std::string out;
  auto trainer_spec = [](std::string_view in, std::string& o) {
    return rewrite_fields(in, o, {1, 2, 16}, 0, [](std::string_view, std::string&) { return false; });
  };
  if (!rewrite_fields(bytes, out, {}, 2, trainer_spec)) return bytes;
  return out;
}

void train_impl(const DocSource& docs, int vocab_size, const std::string& model_prefix,
                const TokenizerTrainOptions& opts) {
  GTA_CHECK(vocab_size >= 260 && vocab_size <= (1 << 30),
            "tokenizer vocab size {} is out of range: byte fallback needs at least 260 "
            "(256 bytes + <unk>, <s>, </s> + 1)", vocab_size);
  GTA_CHECK(opts.model_type == "bpe" || opts.model_type == "unigram",
            "tokenizer model type '{}' is not supported (expected bpe or unigram)", opts.model_type);
  LineIterator it(docs, opts.max_sentences, opts.seed);
  GTA_CHECK(it.size() > 0, "no training text for the tokenizer (all documents are empty)");
  // BPE training gives the same model for any thread count; unigram's EM sums depend on how
  // sentences are split among threads, so it uses a fixed count unless one is requested.
  int threads = opts.num_threads > 0          ? opts.num_threads
                : opts.model_type == "unigram" ? 16
                                               : int(std::max(1u, std::thread::hardware_concurrency()));
  std::unordered_map<std::string, std::string> kw = {
      {"model_prefix", model_prefix},
      {"vocab_size", std::to_string(vocab_size)},
      {"model_type", opts.model_type},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"split_digits", "true"},
      {"character_coverage", fmt::format("{}", opts.character_coverage)},
      {"input_sentence_size", "0"},  // LineIterator already sampled deterministically
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", std::to_string(2 * kMaxLine)},
      {"num_threads", std::to_string(threads)},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"hard_vocab_limit", "false"},
      {"minloglevel", opts.verbose ? "0" : "2"},
  };
  int old_level = sentencepiece::logging::GetMinLogLevel();
  uint32_t sp_seed = uint32_t(opts.seed);
  if (sp_seed == 0xFFFFFFFFu) sp_seed = 0x5eed;
  sentencepiece::SetRandomGeneratorSeed(sp_seed);
  auto st = sentencepiece::SentencePieceTrainer::Train(kw, &it);
  sentencepiece::logging::SetMinLogLevel(old_level);
  if (!st.ok())
    fail("tokenizer training failed (vocab size {}, model {}): {}", vocab_size, model_prefix,
         st.ToString());
  std::string path = model_prefix + ".model";
  std::string canon = canonical_model_bytes(read_file_bytes(path, "trained tokenizer model"));
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(canon.data(), std::streamsize(canon.size()));
  if (!f) fail("cannot write tokenizer model {}", path);
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& path) {
  Tokenizer t;
  t.bytes_ = read_file_bytes(path, "tokenizer model");
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  auto st = sp->LoadFromSerializedProto(t.bytes_);
  if (!st.ok())
    fail("tokenizer model {} is not a valid SentencePiece model: {}", path, st.ToString());
  GTA_CHECK(sp->GetPieceSize() > 0, "tokenizer model {} has an empty vocabulary", path);
  t.sp_ = std::move(sp);
  t.path_ = path;
  t.checksum_ = sha256_hex(t.bytes_);
  return t;
}

void Tokenizer::train(const std::vector<std::string_view>& documents, int vocab_size,
                      const std::string& model_prefix, const TokenizerTrainOptions& opts) {
  train_impl([&](const std::function<void(std::string_view)>& visit) {
    for (auto d : documents) visit(d);
  }, vocab_size, model_prefix, opts);
}

void Tokenizer::train(const std::function<void(const DocumentVisitor&)>& for_each_document, int vocab_size,
                      const std::string& model_prefix, const TokenizerTrainOptions& opts) {
  train_impl(for_each_document, vocab_size, model_prefix, opts);
}

void Tokenizer::train(const std::vector<std::string>& documents, int vocab_size,
                      const std::string& model_prefix, const TokenizerTrainOptions& opts) {
  train_impl([&](const std::function<void(std::string_view)>& visit) {
    for (const auto& d : documents) visit(d);
  }, vocab_size, model_prefix, opts);
}

void Tokenizer::train_from_files(const std::vector<std::string>& files, int vocab_size,
                                 const std::string& model_prefix,
                                 const TokenizerTrainOptions& opts) {
  train_impl([&](const std::function<void(std::string_view)>& visit) {
    for (const auto& f : files) visit(read_file_bytes(f, "tokenizer training file"));
  }, vocab_size, model_prefix, opts);
}

namespace {
void check_loaded(const Tokenizer& t) {
  GTA_CHECK(t.loaded(), "tokenizer used before a model was loaded");
}
}  // namespace

void Tokenizer::encode_append(std::string_view text, std::vector<int32_t>& out) const {
  check_loaded(*this);
  std::vector<int> ids;
  auto st = sp_->Encode(absl::string_view(text.data(), text.size()), &ids);
  if (!st.ok()) fail("tokenizer {}: encode failed: {}", path_, st.ToString());
  out.insert(out.end(), ids.begin(), ids.end());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  encode_append(text, out);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  check_loaded(*this);
  int n = sp_->GetPieceSize();
  std::vector<int> v(ids.begin(), ids.end());
  for (int id : v)
    GTA_CHECK(id >= 0 && id < n, "tokenizer {}: cannot decode id {} (vocab size {})", path_, id, n);
  std::string s;
  auto st = sp_->Decode(v, &s);
  if (!st.ok()) fail("tokenizer {}: decode failed: {}", path_, st.ToString());
  return s;
}

std::string Tokenizer::id_to_piece(int32_t id) const {
  check_loaded(*this);
  GTA_CHECK(id >= 0 && id < sp_->GetPieceSize(), "tokenizer {}: id {} out of range", path_, id);
  return sp_->IdToPiece(id);
}

int Tokenizer::vocab_size() const { check_loaded(*this); return sp_->GetPieceSize(); }
int Tokenizer::eos_id() const { check_loaded(*this); return sp_->eos_id(); }
int Tokenizer::bos_id() const { check_loaded(*this); return sp_->bos_id(); }
int Tokenizer::unk_id() const { check_loaded(*this); return sp_->unk_id(); }

}  // namespace gta::data
