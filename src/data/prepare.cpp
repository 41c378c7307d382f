#include "data/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/progress_line.h"
#include "core/sha256.h"
#include "data/document_reader.h"
#include "data/rng.h"
#include "data/shard.h"
#include "data/tokenizer.h"

namespace fs = std::filesystem;

namespace gta::data {
namespace {

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

// The shards of one split: documents appended in order, a new shard begun at the first document
// boundary past shard_tokens.
class SplitShards {
 public:
  SplitShards(fs::path dir, std::string split, const Tokenizer& tok, uint64_t shard_tokens)
      : dir_(std::move(dir)), split_(std::move(split)), tok_(tok), shard_tokens_(shard_tokens) {}

  void add(const std::vector<int32_t>& ids, uint64_t n_bytes) {
    if (!writer_) {
      std::string name = fmt::format("{}_{:06d}.h5", split_, stats_.shards.size());
      stats_.shards.push_back(name);
      writer_ = std::make_unique<ShardWriter>((dir_ / name).string(), uint64_t(tok_.vocab_size()),
                                              tok_.checksum());
    }
    writer_->add_document(ids, n_bytes);
    stats_.n_tokens += ids.size();
    stats_.n_bytes += n_bytes;
    stats_.n_documents += 1;
    if (writer_->meta().n_tokens >= shard_tokens_) {
      writer_->close();
      writer_.reset();
    }
  }
  SplitStats finish() {
    if (writer_) writer_->close();
    writer_.reset();
    return stats_;
  }

 private:
  fs::path dir_;
  std::string split_;
  const Tokenizer& tok_;
  uint64_t shard_tokens_;
  std::unique_ptr<ShardWriter> writer_;
  SplitStats stats_;
};

// One pass over the corpus: the calling thread reads documents in order and writes each, in
// order, to its split's shards; `threads` workers encode them in between. The documents in
// flight (text until encoded, then tokens) hold at most `buffer_bytes`, or the one document
// that alone is larger, so memory does not grow with the corpus. The output is the same for
// any buffer size and thread count.
void encode_corpus(DocumentReader& reader, const std::vector<bool>& is_val, const Tokenizer& tok,
                   SplitShards& train, SplitShards& val, size_t buffer_bytes, int threads,
                   bool progress) {
  struct Doc {
    std::string text;
    std::vector<int32_t> ids;
    uint64_t n_bytes = 0;
    bool val = false, ready = false;
  };
  // A deque keeps references to its elements valid when the reader appends and the writer pops,
  // so a worker encodes its document outside the lock.
  std::deque<Doc> queue;
  size_t unclaimed = 0;  // index in queue of the first document no worker has taken
  size_t in_flight = 0;  // bytes held by queue's documents
  std::mutex m;
  std::condition_variable cv_work, cv_ready;
  bool stop = false;
  std::exception_ptr worker_error;
  const int eos = tok.eos_id();

  auto worker = [&] {
    for (;;) {
      Doc* d;
      {
        std::unique_lock lk(m);
        cv_work.wait(lk, [&] { return stop || unclaimed < queue.size(); });
        if (stop) return;
        d = &queue[unclaimed++];
      }
      std::vector<int32_t> ids;
      try {
        tok.encode_append(d->text, ids);
        ids.push_back(eos);
      } catch (...) {
        std::lock_guard lk(m);
        if (!worker_error) worker_error = std::current_exception();
        stop = true;
        cv_ready.notify_all();
        cv_work.notify_all();
        return;
      }
      std::lock_guard lk(m);
      in_flight -= d->text.capacity();
      std::string().swap(d->text);  // only the tokens wait for the writer
      d->ids = std::move(ids);
      in_flight += d->ids.capacity() * sizeof(int32_t);
      d->ready = true;
      cv_ready.notify_all();
    }
  };
  std::vector<std::thread> pool;
  auto stop_workers = [&] {
    {
      std::lock_guard lk(m);
      stop = true;
    }
    cv_work.notify_all();
    for (auto& t : pool) t.join();
  };

  try {
    for (int t = 0; t < std::max(1, threads); ++t) pool.emplace_back(worker);
    Progress prog(progress, "encode", is_val.size());
    uint64_t n_written = 0, bytes_written = 0;
    // Waits for the oldest document in flight and writes it.
    auto write_oldest = [&] {
      std::unique_lock lk(m);
      cv_ready.wait(lk, [&] { return stop || queue.front().ready; });
      if (!queue.front().ready) {
        if (worker_error) std::rethrow_exception(worker_error);
        fail("encoding stopped unexpectedly");
      }
      Doc d = std::move(queue.front());
      queue.pop_front();
      --unclaimed;
      in_flight -= d.ids.capacity() * sizeof(int32_t);
      lk.unlock();
      (d.val ? val : train).add(d.ids, d.n_bytes);
      bytes_written += d.n_bytes;
      prog.update(++n_written, bytes_written);
    };
    auto queue_empty = [&] {
      std::lock_guard lk(m);
      return queue.empty();
    };

    std::string text;
    size_t i = 0;
    for (; reader.next(text); ++i) {
      GTA_CHECK(i < is_val.size(), "the inputs changed while gta prepare read them: {} documents now, {} before",
                i + 1, is_val.size());
      for (;;) {
        std::unique_lock lk(m);
        if (queue.empty() || in_flight + text.capacity() <= buffer_bytes) break;
        lk.unlock();
        write_oldest();
      }
      {
        const uint64_t n_bytes = text.size();
        std::lock_guard lk(m);
        in_flight += text.capacity();
        queue.push_back(Doc{std::move(text), {}, n_bytes, is_val[i]});
      }
      cv_work.notify_one();
      text = std::string();
    }
    GTA_CHECK(i == is_val.size(), "the inputs changed while gta prepare read them: {} documents now, {} before",
              i, is_val.size());
    while (!queue_empty()) write_oldest();
    prog.update(n_written, bytes_written, true);
  } catch (...) {
    stop_workers();
    throw;
  }
  stop_workers();
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
  // Passes over the corpus (counting, the tokenizer's two, encoding) each read it anew, a chunk
  // and a document at a time.
  const size_t buffer_bytes = size_t(std::max<uint64_t>(1, opts.buffer_bytes));
  const size_t chunk_bytes = std::min<size_t>(buffer_bytes, size_t(1) << 20);
  auto reader = [&] {
    return DocumentReader(res.input_files, opts.jsonl_field, opts.doc_split, chunk_bytes);
  };
  uint64_t n_docs = 0, n_bytes = 0, n_skipped_empty = 0, n_fixed_utf8 = 0;
  {
    DocumentReader counter = reader();
    for (std::string doc; counter.next(doc);) {
      ++n_docs;
      n_bytes += doc.size();
    }
    n_skipped_empty = counter.n_skipped_empty();
    n_fixed_utf8 = counter.n_fixed_utf8();
  }
  say(fmt::format("read {} files: {} documents, {:.1f} MB{}", res.input_files.size(), n_docs,
                  double(n_bytes) / 1e6,
                  n_fixed_utf8 ? fmt::format(" ({} documents had invalid UTF-8, replaced by U+FFFD)",
                                             n_fixed_utf8)
                               : std::string()));
  if (n_docs < 2)
    fail("inputs hold {} non-empty document(s); at least 2 are needed for a train/val split", n_docs);
  const std::vector<bool> is_val = choose_validation(n_docs, opts.val_fraction, opts.seed);

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
                    opts.model_type, opts.vocab_size,
                    n_docs - uint64_t(std::count(is_val.begin(), is_val.end(), true))));
    TokenizerTrainOptions to;
    to.model_type = opts.model_type;
    to.seed = opts.seed;
    to.max_sentences = opts.tokenizer_sentences;
    to.verbose = opts.verbose;
    auto t0 = std::chrono::steady_clock::now();
    auto for_each_train_document = [&](const Tokenizer::DocumentVisitor& visit) {
      DocumentReader r = reader();
      std::string doc;
      for (size_t i = 0; r.next(doc); ++i)
        if (i < is_val.size() && !is_val[i]) visit(doc);
    };
    Tokenizer::train(for_each_train_document, opts.vocab_size, (tmp / "tokenizer").string(), to);
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

  {
    SplitShards train(tmp, "train", tok, opts.shard_tokens), val(tmp, "val", tok, opts.shard_tokens);
    DocumentReader r = reader();
    encode_corpus(r, is_val, tok, train, val, buffer_bytes, threads, opts.progress);
    res.train = train.finish();
    res.val = val.finish();
  }

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
       {{"total", n_docs},
        {"skipped_empty", n_skipped_empty},
        {"fixed_utf8", n_fixed_utf8}}},
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
