#include "infer/per_token_log.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace gta::infer {

PerTokenLog::PerTokenLog(const std::string& path, int eos_id, const std::vector<std::string>& shards)
    : path_(path), tmp_(path + ".tmp"), eos_id_(eos_id) {
  f_ = std::fopen(tmp_.c_str(), "w");
  if (!f_) fail("--per-token: cannot create {}: {}", tmp_, std::strerror(errno));
  write({{"type", "shards"}, {"shards", shards}, {"eos_id", eos_id >= 0 ? nlohmann::json(eos_id) : nlohmann::json()}});
}

PerTokenLog::~PerTokenLog() {
  if (!f_) return;
  std::fclose(f_);
  std::remove(tmp_.c_str());
}

void PerTokenLog::write(const nlohmann::json& line) {
  const std::string s = line.dump() + "\n";
  if (std::fwrite(s.data(), 1, s.size(), f_) != s.size())
    fail("--per-token: cannot write {}: {}", tmp_, std::strerror(errno));
}

void PerTokenLog::close_document(bool complete) {
  write({{"type", "document"}, {"shard", shard_}, {"doc", doc_}, {"first", first_}, {"last", last_}, {"tokens", n_},
         {"loss_sum", sum_}, {"loss", sum_ / static_cast<double>(n_)}, {"complete", complete}});
  ++doc_;
  open_ = false;
}

void PerTokenLog::add(const TokenLoss& t) {
  if (t.shard != shard_) {
    if (open_) close_document(false);  // the shard's tail: no closing token
    shard_ = t.shard;
    doc_ = 0;
  }
  if (!open_) {
    open_ = true;
    first_ = t.pos, n_ = 0, sum_ = 0;
  }
  ++n_;
  sum_ += t.loss;
  last_ = t.pos;
  write({{"type", "token"}, {"shard", t.shard}, {"pos", t.pos}, {"token", t.token}, {"loss", t.loss}, {"doc", doc_}});
  if (eos_id_ >= 0 && t.token == eos_id_) close_document(true);
}

void PerTokenLog::finish() {
  if (open_) close_document(false);
  const bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  const int err = errno;
  std::fclose(f_);
  f_ = nullptr;
  if (!ok) {
    std::remove(tmp_.c_str());
    fail("--per-token: cannot write {}: {}", tmp_, std::strerror(err));
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail("--per-token: cannot rename {} to {}: {}", tmp_, path_, std::strerror(errno));
}

}  // namespace gta::infer
