#include "nn/kv_cache.h"

#include <algorithm>

#include "core/error.h"
#include "ops/copy.h"
#include "ops/decode_position.h"

namespace gta::nn {

void LayerCache::grow(size_t i, int64_t cap) {
  Tensor& buf = buffers.at(i);
  cap = std::min(cap, max_len);
  if (cap <= buf.size(1)) return;
  Tensor grown = Tensor::zeros({buf.size(0), cap, buf.size(2), buf.size(3)}, buf.dtype(), buf.device());
  if (len > 0) copy_strided(grown.slice(1, 0, len), buf.slice(1, 0, len));
  buf = std::move(grown);
}

void LayerCache::write(size_t i, const Tensor& fresh) {
  const int64_t t = fresh.size(1);
  GTA_CHECK(len + t <= max_len, "KV cache full: {} cached + {} new > capacity {}", len, t, max_len);
  if (len + t > buffers.at(i).size(1)) grow(i, std::max(len + t, 2 * buffers[i].size(1)));
  if (position.defined()) {  // a captured decode step: the row is the device's position
    GTA_CHECK(t == 1, "KV cache: a write at a device position takes one token, got {}", t);
    ops::write_row_at(buffers[i], fresh.detach(), position);
    return;
  }
  copy_strided(buffers[i].slice(1, len, len + t), fresh.detach());
}

Tensor LayerCache::append(size_t i, const Tensor& fresh) {
  GTA_CHECK(!position.defined(), "KV cache: the cached prefix is not readable during a captured decode step");
  write(i, fresh);
  return buffers[i].slice(1, 0, len + fresh.size(1)).contiguous();
}

KVCache::KVCache(const std::vector<std::vector<CacheEntry>>& per_layer, int64_t batch, int64_t max_len, DType dtype,
                 Device device, int64_t initial_len)
    : max_len_(max_len) {
  const int64_t cap = initial_len > 0 ? std::min(initial_len, max_len) : max_len;
  for (const auto& entries : per_layer) {
    LayerCache lc;
    lc.max_len = max_len;
    for (const auto& e : entries) lc.buffers.push_back(Tensor::zeros({batch, cap, e.heads, e.width}, dtype, device));
    layers_.push_back(std::move(lc));
  }
}

int64_t KVCache::bytes() const {
  int64_t n = 0;
  for (const auto& l : layers_)
    for (const auto& b : l.buffers) n += static_cast<int64_t>(b.nbytes());
  return n;
}

void KVCache::reset() { set_len(0); }

void KVCache::set_len(int64_t len) {
  GTA_CHECK(len >= 0 && len <= max_len_, "KV cache: length {} outside [0, {}]", len, max_len_);
  for (auto& l : layers_) l.len = len;
}

void KVCache::reserve() {
  for (auto& l : layers_)
    for (size_t i = 0; i < l.buffers.size(); ++i) l.grow(i, max_len_);
}

void KVCache::set_position(const Tensor& position) {
  for (auto& l : layers_) l.position = position;
}

}  // namespace gta::nn
