#include "data/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/progress_line.h"
#include "core/sha256.h"
#include "data/rng.h"
#include "data/shard.h"
#include "data/tokenizer.h"

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

std::string read_whole(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open input file {}", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("read error on input file {}", path);
  return std::move(ss).str();
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

void add_doc(Corpus& c, std::string_view d) {
  if (d.empty() || is_blank(d)) { ++c.n_skipped_empty; return; }
  if (!valid_utf8(d)) {
    c.storage.push_back(fix_utf8(d));
    d = c.storage.back();
    ++c.n_fixed_utf8;
  }
  c.docs.push_back(d);
  c.n_bytes += d.size();
}

// ---- progress on stderr -----------------------------------------------------------------

// A bar redrawn at most every 100 ms on a terminal; elsewhere only the final line is written.
class Progress {
 public:
  Progress(bool enabled, std::string label, uint64_t total)
      : line_(enabled), label_(std::move(label)), total_(total), t0_(clock::now()), last_(t0_) {}
  void update(uint64_t done, uint64_t bytes, bool final = false) {
    if (!line_.enabled()) return;
    auto now = clock::now();
    if (!final && (!line_.tty() || now - last_ < std::chrono::milliseconds(100))) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - t0_).count();
    double mbps = secs > 0 ? double(bytes) / 1e6 / secs : 0.0;
    double frac = total_ ? double(done) / double(total_) : 1.0;
    int width = 30, fill = int(frac * width + 0.5);
    std::string bar(size_t(fill), '#');
    bar.resize(size_t(width), '.');
    const std::string text = fmt::format("{:<10} [{}] {:3d}%  {}/{} docs  {:.1f} MB/s  {:.1f}s", label_, bar,
                                         int(frac * 100 + 0.5), done, total_, mbps, secs);
    if (final) line_.print(text);
    else line_.redraw(text);
  }

 private:
  using clock = std::chrono::steady_clock;
  ProgressLine line_;
  std::string label_;
  uint64_t total_;
  clock::time_point t0_, last_;
};

// ---- parallel encode + ordered shard writing ---------------------------------------------

SplitStats encode_split(const std::vector<std::string_view>& docs, const Tokenizer& tok,
                        const fs::path& dir, const std::string& split, uint64_t shard_tokens,
                        int threads, bool progress) {
  SplitStats stats;
  const size_t n = docs.size();
  const size_t window = 4096;  // documents in flight (bounds memory)
  std::vector<std::vector<int32_t>> slots(window);
  std::vector<char> ready(window, 0);
  std::mutex m;
  std::condition_variable cv_ready, cv_space;
  size_t next = 0, consumed = 0;
  bool abort = false;
  std::exception_ptr worker_error;
  const int eos = tok.eos_id();

  auto worker = [&] {
    std::vector<int32_t> ids;
    for (;;) {
      size_t i;
      {
        std::unique_lock lk(m);
        cv_space.wait(lk, [&] { return abort || next >= n || next < consumed + window; });
        if (abort || next >= n) return;
        i = next++;
      }
      ids.clear();
      try {
        tok.encode_append(docs[i], ids);
      } catch (...) {
        std::lock_guard lk(m);
        if (!worker_error) worker_error = std::current_exception();
        abort = true;
        cv_ready.notify_all();
        cv_space.notify_all();
        return;
      }
      ids.push_back(eos);
      std::lock_guard lk(m);
      slots[i % window].swap(ids);
      ready[i % window] = 1;
      cv_ready.notify_all();
    }
  };
  int nt = std::max(1, threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < nt; ++t) pool.emplace_back(worker);

  auto stop_workers = [&] {
    {
      std::lock_guard lk(m);
      abort = true;
    }
    cv_space.notify_all();
    for (auto& t : pool)
      if (t.joinable()) t.join();
  };

  try {
    Progress prog(progress, split, n);
    std::unique_ptr<ShardWriter> writer;
    auto open_next = [&] {
      std::string name = fmt::format("{}_{:06d}.h5", split, stats.shards.size());
      stats.shards.push_back(name);
      writer = std::make_unique<ShardWriter>((dir / name).string(), uint64_t(tok.vocab_size()),
                                             tok.checksum());
    };
    std::vector<int32_t> cur;
    uint64_t bytes_done = 0;
    for (size_t i = 0; i < n; ++i) {
      {
        std::unique_lock lk(m);
        cv_ready.wait(lk, [&] { return abort || ready[i % window]; });
        if (!ready[i % window]) {
          if (worker_error) std::rethrow_exception(worker_error);
          fail("encoding stopped unexpectedly");
        }
        cur.swap(slots[i % window]);
        slots[i % window].clear();
        ready[i % window] = 0;
        consumed = i + 1;
      }
      cv_space.notify_all();
      if (!writer) open_next();
      writer->add_document(cur, docs[i].size());
      stats.n_tokens += cur.size();
      stats.n_bytes += docs[i].size();
      stats.n_documents += 1;
      bytes_done += docs[i].size();
      if (writer->meta().n_tokens >= shard_tokens) {
        writer->close();
        writer.reset();
      }
      prog.update(i + 1, bytes_done);
    }
    if (writer) writer->close();
    prog.update(n, bytes_done, true);
  } catch (...) {
    stop_workers();
    throw;
  }
  stop_workers();
  return stats;
}

nlohmann::json split_json(const SplitStats& s) {
  return {{"shards", s.shards}, {"n_documents", s.n_documents}, {"n_tokens", s.n_tokens},
          {"n_bytes", s.n_bytes}};
}

std::string read_proc_cmdline() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  if (!f) return {};
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::string out;
  size_t pos = 0;
  bool first = true;
  while (pos < raw.size()) {
    size_t e = raw.find('\0', pos);
    if (e == std::string::npos) e = raw.size();
    std::string arg = raw.substr(pos, e - pos);
    pos = e + 1;
    if (first) { arg = fs::path(arg).filename().string(); first = false; }
    bool quote = arg.empty() || arg.find_first_of(" \t\"'$*?") != std::string::npos;
    if (!out.empty()) out += ' ';
    out += quote ? "'" + arg + "'" : arg;
  }
  return out;
}

}  // namespace

// ---- inputs -----------------------------------------------------------------------------

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

std::vector<std::string_view> split_blank_line_documents(std::string_view text) {
  std::vector<std::string_view> docs;
  size_t pos = 0, doc_start = std::string_view::npos, doc_end = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string_view::npos ? text.size() : nl;
    std::string_view line = text.substr(pos, end - pos);
    if (is_blank(line)) {
      if (doc_start != std::string_view::npos) {
        docs.push_back(text.substr(doc_start, doc_end - doc_start));
        doc_start = std::string_view::npos;
      }
    } else {
      if (doc_start == std::string_view::npos) doc_start = pos;
      doc_end = end;
      if (doc_end > doc_start && text[doc_end - 1] == '\r') --doc_end;
    }
    pos = end + 1;
  }
  if (doc_start != std::string_view::npos) docs.push_back(text.substr(doc_start, doc_end - doc_start));
  return docs;
}

void load_corpus(const std::vector<std::string>& files, const std::string& jsonl_field,
                 const std::string& doc_split, Corpus& corpus) {
  GTA_CHECK(doc_split == "blank-lines" || doc_split == "file",
            "unknown document split '{}' (expected blank-lines or file)", doc_split);
  for (const auto& path : files) {
    if (is_jsonl(path)) {
      std::ifstream f(path, std::ios::binary);
      if (!f) fail("cannot open input file {}", path);
      std::string line;
      uint64_t lineno = 0;
      while (std::getline(f, line)) {
        ++lineno;
        if (is_blank(line)) continue;
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error& e) {
          fail("{}:{}: invalid JSON: {}", path, lineno, e.what());
        }
        if (!j.is_object()) fail("{}:{}: expected a JSON object per line, got {}", path, lineno, j.type_name());
        auto it = j.find(jsonl_field);
        if (it == j.end())
          fail("{}:{}: record has no field '{}' (choose the field with --jsonl-field)", path,
               lineno, jsonl_field);
        if (!it->is_string())
          fail("{}:{}: field '{}' is a {}, expected a string", path, lineno, jsonl_field,
               it->type_name());
        corpus.storage.push_back(it->get<std::string>());
        add_doc(corpus, corpus.storage.back());
      }
      if (f.bad()) fail("read error on input file {}", path);
    } else {
      corpus.storage.push_back(read_whole(path));
      std::string_view text = corpus.storage.back();
      if (doc_split == "file") {
        add_doc(corpus, text);
      } else {
        for (auto d : split_blank_line_documents(text)) add_doc(corpus, d);
      }
    }
  }
}

std::vector<bool> choose_validation(size_t n, double val_fraction, uint64_t seed) {
  GTA_CHECK(val_fraction >= 0.0 && val_fraction < 1.0,
            "--val-fraction must be in [0, 1), got {}", val_fraction);
  GTA_CHECK(n >= 2, "need at least 2 documents to split into train and validation, found {}", n);
  size_t n_val = size_t(std::llround(val_fraction * double(n)));
  n_val = std::clamp<size_t>(n_val, 1, n - 1);
  std::vector<uint64_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  shuffle(idx, mix_seed(seed, 0x76616c));  // "val"
  std::vector<bool> is_val(n, false);
  for (size_t i = 0; i < n_val; ++i) is_val[idx[i]] = true;
  return is_val;
}

// ---- the command --------------------------------------------------------------------------

PrepareResult prepare(const PrepareOptions& opts) {
  GTA_CHECK(!opts.out_dir.empty(), "no output directory given (expected --out DIR)");
  GTA_CHECK(opts.shard_tokens >= 1, "--shard-tokens must be positive");
  fs::path out = fs::absolute(opts.out_dir).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();
  GTA_CHECK(out.has_filename() && out != out.root_path(), "bad output directory {}", opts.out_dir);
  std::error_code ec;
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out, ec)) fail("output path {} exists and is not a directory", out.string());
    if (!fs::is_empty(out, ec) && !opts.force)
      fail("output directory {} exists and is not empty (pass --force to replace it)", out.string());
  }
  const int threads = opts.threads > 0 ? opts.threads
                                       : int(std::max(1u, std::thread::hardware_concurrency()));
  auto say = [&](const std::string& s) {
    if (opts.progress) std::fprintf(stderr, "%s\n", s.c_str());
  };

  PrepareResult res;
  res.input_files = collect_input_files(opts.inputs);
  Corpus corpus;
  load_corpus(res.input_files, opts.jsonl_field, opts.doc_split, corpus);
  say(fmt::format("read {} files: {} documents, {:.1f} MB{}", res.input_files.size(),
                  corpus.docs.size(), double(corpus.n_bytes) / 1e6,
                  corpus.n_fixed_utf8 ? fmt::format(" ({} documents had invalid UTF-8, replaced by "
                                                    "U+FFFD)", corpus.n_fixed_utf8)
                                      : std::string()));
  if (corpus.docs.size() < 2)
    fail("inputs hold {} non-empty document(s); at least 2 are needed for a train/val split",
         corpus.docs.size());
  auto is_val = choose_validation(corpus.docs.size(), opts.val_fraction, opts.seed);
  std::vector<std::string_view> train_docs, val_docs;
  for (size_t i = 0; i < corpus.docs.size(); ++i)
    (is_val[i] ? val_docs : train_docs).push_back(corpus.docs[i]);

  // Everything is written under a temporary sibling and renamed at the end.
  fs::create_directories(out.parent_path(), ec);
  fs::path tmp = out.parent_path() / fmt::format(".{}.tmp-{}", out.filename().string(), ::getpid());
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec))
    fail("cannot create temporary output directory {}: {}", tmp.string(), ec.message());
  struct TmpGuard {
    fs::path p;
    bool keep = false;
    ~TmpGuard() {
      std::error_code e;
      if (!keep) fs::remove_all(p, e);
    }
  } guard{tmp};

  Tokenizer tok;
  bool trained = opts.tokenizer.empty();
  if (trained) {
    say(fmt::format("training a {} tokenizer (vocab {}) on {} train documents ...",
                    opts.model_type, opts.vocab_size, train_docs.size()));
    TokenizerTrainOptions to;
    to.model_type = opts.model_type;
    to.seed = opts.seed;
    to.max_sentences = opts.tokenizer_sentences;
    to.verbose = opts.verbose;
    auto t0 = std::chrono::steady_clock::now();
    Tokenizer::train(train_docs, opts.vocab_size, (tmp / "tokenizer").string(), to);
    tok = Tokenizer::load((tmp / "tokenizer.model").string());
    say(fmt::format("tokenizer: {} pieces, sha256 {} ({:.1f}s)", tok.vocab_size(),
                    tok.checksum().substr(0, 16),
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  } else {
    tok = Tokenizer::load(opts.tokenizer);
    std::ofstream f(tmp / "tokenizer.model", std::ios::binary);
    f.write(tok.model_bytes().data(), std::streamsize(tok.model_bytes().size()));
    if (!f) fail("cannot write {}", (tmp / "tokenizer.model").string());
    say(fmt::format("tokenizer {}: {} pieces, sha256 {}", opts.tokenizer, tok.vocab_size(),
                    tok.checksum().substr(0, 16)));
  }
  GTA_CHECK(tok.eos_id() >= 0, "tokenizer {} defines no EOS piece; documents need one", tok.path());
  res.tokenizer_sha256 = tok.checksum();
  res.vocab_size = tok.vocab_size();

  res.train = encode_split(train_docs, tok, tmp, "train", opts.shard_tokens, threads, opts.progress);
  res.val = encode_split(val_docs, tok, tmp, "val", opts.shard_tokens, threads, opts.progress);

  // Long file lists (a source tree) are summarized by count and checksum.
  nlohmann::json input_files_json;
  if (res.input_files.size() <= 1000) {
    input_files_json = res.input_files;
  } else {
    std::string all;
    for (const auto& f : res.input_files) all += f + "\n";
    input_files_json = {{"count", res.input_files.size()},
                        {"first", res.input_files.front()},
                        {"last", res.input_files.back()},
                        {"sha256_of_list", sha256_hex(all)}};
  }
  std::string cmd = opts.command_line.empty() ? read_proc_cmdline() : opts.command_line;
  res.manifest = {
      {"format", "gta-prepare-1"},
      {"command", cmd},
      {"options",
       {{"inputs", opts.inputs},
        {"vocab_size", opts.vocab_size},
        {"tokenizer", opts.tokenizer},
        {"model_type", opts.model_type},
        {"tokenizer_sentences", opts.tokenizer_sentences},
        {"val_fraction", opts.val_fraction},
        {"jsonl_field", opts.jsonl_field},
        {"seed", opts.seed},
        {"shard_tokens", opts.shard_tokens},
        {"doc_split", opts.doc_split}}},
      {"input_files", input_files_json},
      {"tokenizer",
       {{"file", "tokenizer.model"},
        {"sha256", tok.checksum()},
        {"vocab_size", tok.vocab_size()},
        {"eos_id", tok.eos_id()},
        {"bos_id", tok.bos_id()},
        {"trained", trained}}},
      {"documents",
       {{"total", corpus.docs.size()},
        {"skipped_empty", corpus.n_skipped_empty},
        {"fixed_utf8", corpus.n_fixed_utf8}}},
      {"train", split_json(res.train)},
      {"val", split_json(res.val)},
  };
  {
    std::ofstream f(tmp / "prepare.json");
    f << res.manifest.dump(2) << "\n";
    if (!f) fail("cannot write {}", (tmp / "prepare.json").string());
  }

  install_dir(tmp.string(), out.string());
  guard.keep = true;
  say(fmt::format("wrote {}: train {} tokens in {} shard(s), val {} tokens in {} shard(s)",
                  out.string(), res.train.n_tokens, res.train.shards.size(), res.val.n_tokens,
                  res.val.shards.size()));
  return res;
}

}  // namespace gta::data
