#include "data/document_reader.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"

namespace fs = std::filesystem;

namespace gta::data {
namespace {

const std::set<std::string> kTextExt = {
    ".txt", ".text", ".md", ".markdown", ".rst", ".tex", ".org", ".csv", ".tsv", ".html", ".htm",
    ".xml", ".py", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".cu", ".cuh", ".java", ".js", ".ts",
    ".go", ".rs", ".rb", ".sh", ".lua", ".jl", ".hs", ".ml", ".scala", ".kt", ".swift", ".m",
    ".sql", ".yaml", ".yml", ".toml", ".css"};

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_jsonl(const std::string& path) {
  auto e = lower(fs::path(path).extension().string());
  return e == ".jsonl" || e == ".ndjson";
}

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; });
}

// Length of the valid UTF-8 sequence at s[i], or 0 when invalid.
size_t utf8_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return uint8_t(s[k]); };
  uint8_t c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (uint8_t(s[i]) < 0x80) { ++i; continue; }
    size_t n = utf8_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string fix_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_len(s, i);
    if (n == 0) { out += "\xEF\xBF\xBD"; ++i; }
    else { out.append(s.substr(i, n)); i += n; }
  }
  return out;
}

}  // namespace

std::vector<std::string> collect_input_files(const std::vector<std::string>& inputs) {
  GTA_CHECK(!inputs.empty(), "no input given (expected --input PATH)");
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      auto it = fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied, ec);
      if (ec) fail("cannot list input directory {}: {}", in, ec.message());
      for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) fail("cannot list input directory {}: {}", in, ec.message());
        const auto& p = it->path();
        std::string name = p.filename().string();
        if (!name.empty() && name[0] == '.') {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (!it->is_regular_file()) continue;
        std::string ext = lower(p.extension().string());
        if (kTextExt.count(ext) || is_jsonl(name)) found.push_back(p.string());
      }
      if (found.empty())
        fail("input directory {} contains no text or JSONL files (looked for .txt, .md, .jsonl, "
             ".py, ...)", in);
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (fs::exists(in, ec)) {
      out.push_back(in);
    } else {
      fail("input {} does not exist", in);
    }
  }
  return out;
}

DocumentReader::DocumentReader(std::vector<std::string> files, std::string jsonl_field,
                               std::string doc_split, size_t chunk_bytes)
    : files_(std::move(files)), jsonl_field_(std::move(jsonl_field)),
      doc_split_(std::move(doc_split)), chunk_bytes_(std::max<size_t>(1, chunk_bytes)) {
  GTA_CHECK(doc_split_ == "blank-lines" || doc_split_ == "file",
            "unknown document split '{}' (expected blank-lines or file)", doc_split_);
}

bool DocumentReader::fill() {
  if (eof_) return false;
  buf_.resize(chunk_bytes_);
  in_.read(buf_.data(), std::streamsize(chunk_bytes_));
  if (in_.bad()) fail("read error on input file {}", path());
  buf_.resize(size_t(in_.gcount()));
  buf_pos_ = 0;
  eof_ = in_.eof();
  return !buf_.empty();
}

// Lines as std::getline splits them: a last line without '\n' counts when it is not empty.
bool DocumentReader::next_line(std::string_view& line) {
  line_.clear();
  bool spans = false;  // the line's start is in line_ (it began in an earlier chunk)
  for (;;) {
    const size_t nl = buf_.find('\n', buf_pos_);
    if (nl != std::string::npos) {
      const std::string_view rest(buf_.data() + buf_pos_, nl - buf_pos_);
      buf_pos_ = nl + 1;
      ++lineno_;
      if (!spans) {
        line = rest;
      } else {
        line_.append(rest);
        line = line_;
      }
      return true;
    }
    line_.append(buf_, buf_pos_);
    buf_pos_ = buf_.size();
    spans = true;
    if (!fill()) {
      if (line_.empty()) return false;
      ++lineno_;
      line = line_;
      return true;
    }
  }
}

bool DocumentReader::next_raw(std::string& doc) {
  for (; file_index_ < files_.size(); ++file_index_, open_ = false) {
    if (!open_) {
      in_ = std::ifstream(path(), std::ios::binary);
      if (!in_) fail("cannot open input file {}", path());
      open_ = true;
      jsonl_ = is_jsonl(path());
      eof_ = false;
      buf_.clear();
      buf_pos_ = 0;
      lineno_ = 0;
    }
    std::string_view line;
    if (jsonl_) {
      while (next_line(line)) {
        if (is_blank(line)) continue;
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error& e) {
          fail("{}:{}: invalid JSON: {}", path(), lineno_, e.what());
        }
        if (!j.is_object())
          fail("{}:{}: expected a JSON object per line, got {}", path(), lineno_, j.type_name());
        auto it = j.find(jsonl_field_);
        if (it == j.end())
          fail("{}:{}: record has no field '{}' (choose the field with --jsonl-field)", path(),
               lineno_, jsonl_field_);
        if (!it->is_string())
          fail("{}:{}: field '{}' is a {}, expected a string", path(), lineno_, jsonl_field_,
               it->type_name());
        doc = std::move(it->get_ref<std::string&>());
        return true;
      }
    } else if (doc_split_ == "file") {
      doc.clear();
      while (fill()) doc += buf_;
      ++file_index_;
      open_ = false;
      return true;
    } else {
      doc.clear();
      bool in_doc = false;
      while (next_line(line)) {
        if (is_blank(line)) {
          if (in_doc) break;
          continue;
        }
        if (in_doc) doc += '\n';
        doc += line;
        in_doc = true;
      }
      if (in_doc) {
        if (doc.back() == '\r') doc.pop_back();  // the line is not blank: doc stays non-empty
        return true;
      }
    }
  }
  return false;
}

bool DocumentReader::next(std::string& doc) {
  while (next_raw(doc)) {
    if (doc.empty() || is_blank(doc)) {
      ++n_skipped_empty_;
      continue;
    }
    if (!valid_utf8(doc)) {
      doc = fix_utf8(doc);
      ++n_fixed_utf8_;
    }
    return true;
  }
  return false;
}

}  // namespace gta::data
