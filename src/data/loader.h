// DataLoader: deterministic, rank-aware, resumable batches of token windows.
//
// Windows are T+1 tokens (inputs + shifted targets). Window w of shard s starts at token w*T,
// so windows overlap by one token, never cross a shard, and a shard of n tokens holds
// floor((n-1)/T) of them. Windows of all shards are numbered globally in shard order.
//
// There is one global stream of samples. Sample k belongs to epoch k / n_windows; in random
// mode it is window perm_epoch[k % n_windows] where perm_epoch is a Fisher-Yates permutation
// seeded by (seed, epoch); in sequential mode it is window k % n_windows. The loader keeps a
// global cursor (samples consumed by all ranks together); next_batch() on rank r returns
// samples cursor + r*B + i (i < B) and advances the cursor by world_size*B. Hence one process
// with batch 2B sees exactly what two ranks with batch B see together, and a saved cursor
// resumes on any world size.
#pragma once
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "data/token_source.h"

namespace gta::data {

enum class SampleMode { Random, Sequential };
SampleMode parse_sample_mode(const std::string& s);  // "random" | "sequential"
const char* to_string(SampleMode m);

struct LoaderOptions {
  int64_t seq_len = 0;     // T
  int64_t batch_size = 0;  // B per rank
  int rank = 0;
  int world_size = 1;
  uint64_t seed = 0;
  SampleMode mode = SampleMode::Random;
  bool prefetch = true;    // build the next batch on a background thread (same result)
  // When > 0, every token read must lie in [0, vocab_limit) (the model's vocabulary); one that
  // does not is an error naming its shard and position (a .bin shard records no vocabulary).
  int64_t vocab_limit = 0;
};

struct Batch {
  int B = 0, T = 0;
  std::vector<int32_t> tokens;   // B rows of T+1 tokens, row-major
  std::vector<uint64_t> samples; // global sample index of each row (eval: row valid if < n_windows)
  const int32_t* row(int b) const { return tokens.data() + size_t(b) * size_t(T + 1); }
};

// Expands shard specs: a file, a directory (its .h5/.hdf5/.bin files, sorted, not recursive)
// or a glob pattern (matches sorted). Throws gta::Error naming a spec that matches nothing.
std::vector<std::string> expand_shard_paths(const std::vector<std::string>& specs);

class DataLoader {
 public:
  DataLoader(const std::vector<std::string>& specs, const LoaderOptions& opts);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // This rank's next B samples; advances the global cursor by world_size * B.
  Batch next_batch();

  // Reads one window (T+1 tokens) by global window index.
  void read_window(uint64_t window, int32_t* out);
  // Where window `window` lies: its shard (index into files()) and its first token there.
  std::pair<size_t, uint64_t> window_location(uint64_t window) const;
  // The window that global sample `k` maps to.
  uint64_t window_of_sample(uint64_t k);

  uint64_t n_windows() const { return n_windows_; }
  uint64_t cursor() const { return cursor_; }
  void set_cursor(uint64_t c);
  uint64_t epoch() const { return n_windows_ ? cursor_ / n_windows_ : 0; }
  uint64_t samples_per_step() const { return uint64_t(opts_.world_size) * uint64_t(opts_.batch_size); }
  const LoaderOptions& options() const { return opts_; }

  // Checkpoint state: cursor, seed, mode, seq_len and a fingerprint of the shard list.
  nlohmann::json state() const;
  // Restores cursor, seed and mode; refuses (gta::Error) state saved for other shards or T.
  void load_state(const nlohmann::json& st);

  const std::vector<std::string>& files() const { return files_; }
  uint64_t total_tokens() const { return total_tokens_; }
  // Sum of the shards' n_bytes; 0 when any shard does not record it (.bin).
  uint64_t total_bytes() const { return total_bytes_; }
  uint64_t total_documents() const { return total_documents_; }
  // total_bytes / total_tokens (0 when unknown): converts nats/token into bits/byte.
  double bytes_per_token() const;
  uint64_t vocab_size() const { return vocab_size_; }  // largest recorded; 0 when unknown
  const std::string& tokenizer_sha256() const { return tokenizer_sha256_; }  // "" when unknown
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  Batch build_batch(uint64_t cursor);
  // Reads tokens [start, start + count) of shard s into out, checked against opts_.vocab_limit.
  void read_checked(size_t s, uint64_t start, uint64_t count, int32_t* out);
  const std::vector<uint32_t>& permutation(uint64_t epoch);
  void wait_prefetch();

  LoaderOptions opts_;
  std::vector<std::string> files_;
  std::vector<std::unique_ptr<TokenSource>> sources_;
  std::vector<uint64_t> window_start_;  // prefix sums of windows per shard (size n_shards+1)
  uint64_t n_windows_ = 0, cursor_ = 0;
  uint64_t total_tokens_ = 0, total_bytes_ = 0, total_documents_ = 0, vocab_size_ = 0;
  std::string tokenizer_sha256_, fingerprint_;
  std::map<uint64_t, std::vector<uint32_t>> perms_;  // small cache: epoch -> permutation
  std::future<Batch> pending_;
  uint64_t pending_cursor_ = 0;
};

}  // namespace gta::data
