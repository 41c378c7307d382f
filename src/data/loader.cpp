#include "data/loader.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/sha256.h"
#include "data/rng.h"

namespace fs = std::filesystem;

namespace gta::data {

SampleMode parse_sample_mode(const std::string& s) {
  if (s == "random") return SampleMode::Random;
  if (s == "sequential") return SampleMode::Sequential;
  fail("unknown sampling mode '{}' (expected random or sequential)", s);
}

const char* to_string(SampleMode m) { return m == SampleMode::Random ? "random" : "sequential"; }

std::vector<std::string> expand_shard_paths(const std::vector<std::string>& specs) {
  std::vector<std::string> out;
  for (const auto& spec : specs) {
    std::error_code ec;
    if (fs::is_directory(spec, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(spec, ec))
        if (e.is_regular_file() && is_token_file(e.path().string())) found.push_back(e.path().string());
      if (ec) fail("cannot list data directory {}: {}", spec, ec.message());
      if (found.empty()) fail("data directory {} contains no .h5, .hdf5 or .bin shards", spec);
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (fs::exists(spec, ec)) {
      out.push_back(spec);
    } else if (spec.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      int rc = ::glob(spec.c_str(), 0, nullptr, &g);
      std::vector<std::string> found;
      if (rc == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) found.emplace_back(g.gl_pathv[i]);
      ::globfree(&g);
      if (found.empty()) fail("data pattern {} matches no files", spec);
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else {
      fail("data path {} does not exist", spec);
    }
  }
  if (out.empty()) fail("no data shards given");
  return out;
}

DataLoader::DataLoader(const std::vector<std::string>& specs, const LoaderOptions& opts)
    : opts_(opts) {
  GTA_CHECK(opts.seq_len >= 1, "data loader: seq_len must be >= 1, got {}", opts.seq_len);
  GTA_CHECK(opts.batch_size >= 1, "data loader: batch size must be >= 1, got {}", opts.batch_size);
  GTA_CHECK(opts.world_size >= 1 && opts.rank >= 0 && opts.rank < opts.world_size,
            "data loader: rank {} is not in [0, world_size={})", opts.rank, opts.world_size);
  files_ = expand_shard_paths(specs);
  const uint64_t T = uint64_t(opts.seq_len);
  window_start_.push_back(0);
  bool bytes_known = true;
  std::string fp;
  for (const auto& f : files_) {
    auto src = open_token_source(f);
    uint64_t n = src->n_tokens();
    if (n < T + 1)
      fail("shard {} has {} tokens, fewer than seq_len + 1 = {} needed for one window", f, n, T + 1);
    uint64_t w = (n - 1) / T;
    window_start_.push_back(window_start_.back() + w);
    total_tokens_ += n;
    total_documents_ += src->n_documents();
    if (src->n_bytes() == 0) bytes_known = false;
    total_bytes_ += src->n_bytes();
    vocab_size_ = std::max(vocab_size_, src->vocab_size());
    std::string sha = src->tokenizer_sha256();
    if (!sha.empty()) {
      if (tokenizer_sha256_.empty()) {
        tokenizer_sha256_ = sha;
      } else if (sha != tokenizer_sha256_) {
        fail("shard {} was encoded with tokenizer {} but {} used tokenizer {}; all shards of one "
             "run must share a tokenizer", f, sha.substr(0, 12), files_.front(),
             tokenizer_sha256_.substr(0, 12));
      }
    }
    fp += fmt::format("{}:{}\n", fs::path(f).filename().string(), n);
    sources_.push_back(std::move(src));
  }
  if (!bytes_known) total_bytes_ = 0;
  n_windows_ = window_start_.back();
  GTA_CHECK(n_windows_ < (uint64_t(1) << 32), "data loader: {} windows is more than 2^32",
            n_windows_);
  fingerprint_ = sha256_hex(fp + tokenizer_sha256_).substr(0, 16);
}

DataLoader::~DataLoader() {
  try {
    wait_prefetch();
  } catch (...) {
  }
}

void DataLoader::wait_prefetch() {
  if (pending_.valid()) {
    auto f = std::move(pending_);
    f.wait();
    // Exceptions of a discarded prefetch are dropped; the synchronous path will redo the work.
    try { f.get(); } catch (...) {}
  }
}

double DataLoader::bytes_per_token() const {
  return total_tokens_ ? double(total_bytes_) / double(total_tokens_) : 0.0;
}

const std::vector<uint32_t>& DataLoader::permutation(uint64_t epoch) {
  auto it = perms_.find(epoch);
  if (it != perms_.end()) return it->second;
  while (perms_.size() >= 2) perms_.erase(perms_.begin());
  std::vector<uint32_t> p(n_windows_);
  for (uint64_t i = 0; i < n_windows_; ++i) p[i] = uint32_t(i);
  shuffle(p, mix_seed(opts_.seed, epoch));
  return perms_.emplace(epoch, std::move(p)).first->second;
}

uint64_t DataLoader::window_of_sample(uint64_t k) {
  if (pending_.valid()) wait_prefetch();
  uint64_t e = k / n_windows_, j = k % n_windows_;
  return opts_.mode == SampleMode::Random ? permutation(e)[j] : j;
}

std::pair<size_t, uint64_t> DataLoader::window_location(uint64_t window) const {
  GTA_CHECK(window < n_windows_, "data loader: window {} out of range ({} windows)", window,
            n_windows_);
  size_t s = size_t(std::upper_bound(window_start_.begin(), window_start_.end(), window) -
                    window_start_.begin()) - 1;
  return {s, (window - window_start_[s]) * uint64_t(opts_.seq_len)};
}

void DataLoader::read_window(uint64_t window, int32_t* out) {
  if (pending_.valid()) wait_prefetch();
  const auto [s, start] = window_location(window);
  read_checked(s, start, uint64_t(opts_.seq_len) + 1, out);
}

void DataLoader::read_checked(size_t s, uint64_t start, uint64_t count, int32_t* out) {
  sources_[s]->read(start, count, out);
  if (opts_.vocab_limit <= 0) return;
  for (uint64_t i = 0; i < count; ++i)
    if (out[i] < 0 || out[i] >= opts_.vocab_limit)
      fail("shard {}: token id {} at position {}{} is outside the model's vocabulary [0, {}) (shards written with "
           "another tokenizer?)",
           files_[s], out[i], start + i, sources_[s]->describe_position(start + i), opts_.vocab_limit);
}

Batch DataLoader::build_batch(uint64_t cursor) {
  Batch b;
  b.B = int(opts_.batch_size);
  b.T = int(opts_.seq_len);
  const size_t row = size_t(b.T) + 1;
  b.tokens.resize(size_t(b.B) * row);
  b.samples.resize(size_t(b.B));
  uint64_t first = cursor + uint64_t(opts_.rank) * uint64_t(opts_.batch_size);
  for (int i = 0; i < b.B; ++i) {
    uint64_t k = first + uint64_t(i);
    uint64_t e = k / n_windows_, j = k % n_windows_;
    uint64_t w = opts_.mode == SampleMode::Random ? permutation(e)[j] : j;
    b.samples[size_t(i)] = k;
    size_t s = size_t(std::upper_bound(window_start_.begin(), window_start_.end(), w) -
                      window_start_.begin()) - 1;
    read_checked(s, (w - window_start_[s]) * uint64_t(b.T), row, b.tokens.data() + size_t(i) * row);
  }
  return b;
}

Batch DataLoader::next_batch() {
  Batch b;
  if (pending_.valid() && pending_cursor_ == cursor_) {
    auto f = std::move(pending_);
    b = f.get();
  } else {
    wait_prefetch();
    b = build_batch(cursor_);
  }
  cursor_ += samples_per_step();
  if (opts_.prefetch) {
    pending_cursor_ = cursor_;
    pending_ = std::async(std::launch::async, [this, c = cursor_] { return build_batch(c); });
  }
  return b;
}

void DataLoader::set_cursor(uint64_t c) {
  wait_prefetch();
  cursor_ = c;
}

nlohmann::json DataLoader::state() const {
  return nlohmann::json{
      {"cursor", cursor_},
      {"seed", opts_.seed},
      {"mode", to_string(opts_.mode)},
      {"seq_len", opts_.seq_len},
      {"n_windows", n_windows_},
      {"n_shards", files_.size()},
      {"fingerprint", fingerprint_},
  };
}

void DataLoader::load_state(const nlohmann::json& st) {
  wait_prefetch();
  GTA_CHECK(st.is_object(), "data loader state must be a JSON object, got {}", st.dump());
  for (const char* k : {"cursor", "seed", "mode", "seq_len", "fingerprint"})
    GTA_CHECK(st.contains(k), "data loader state is missing key '{}'", k);
  try {
    std::string fp = st.at("fingerprint").get<std::string>();
    if (fp != fingerprint_)
      fail("data loader state was saved for other data (fingerprint {}, {} shards, {} windows) "
           "but the shards given now ({} shards starting with {}, {} windows) have fingerprint "
           "{}; resuming on different data is refused",
           fp, st.value("n_shards", uint64_t(0)), st.value("n_windows", uint64_t(0)),
           files_.size(), files_.front(), n_windows_, fingerprint_);
    int64_t T = st.at("seq_len").get<int64_t>();
    if (T != opts_.seq_len)
      fail("data loader state was saved with seq_len {} but the loader uses seq_len {}", T,
           opts_.seq_len);
    // The cursor indexes the order of one mode and seed: another one would silently reorder the run.
    const SampleMode mode = parse_sample_mode(st.at("mode").get<std::string>());
    if (mode != opts_.mode)
      fail("data loader state was saved in mode {} but the loader reads in mode {}", to_string(mode),
           to_string(opts_.mode));
    const uint64_t seed = st.at("seed").get<uint64_t>();
    if (seed != opts_.seed) fail("data loader state was saved with seed {} but the loader uses seed {}", seed, opts_.seed);
    cursor_ = st.at("cursor").get<uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("data loader state is malformed: {}", e.what());
  }
  perms_.clear();
}

}  // namespace gta::data
