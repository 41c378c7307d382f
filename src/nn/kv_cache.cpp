#include "nn/kv_cache.h"

#include "core/error.h"
#include "core/strided.h"

namespace gta::nn {

Tensor LayerCache::append(size_t i, const Tensor& fresh) {
  Tensor& buf = buffers.at(i);
  const int64_t t = fresh.size(1);
  GTA_CHECK(len + t <= buf.size(1), "KV cache full: {} cached + {} new > capacity {}", len, t, buf.size(1));
  copy_strided(buf.slice(1, len, len + t), fresh.detach());
  return buf.slice(1, 0, len + t).contiguous();
}

KVCache::KVCache(const std::vector<std::vector<CacheEntry>>& per_layer, int64_t batch, int64_t max_len, DType dtype,
                 Device device)
    : max_len_(max_len) {
  for (const auto& entries : per_layer) {
    LayerCache lc;
    for (const auto& e : entries) lc.buffers.push_back(Tensor::zeros({batch, max_len, e.heads, e.width}, dtype, device));
    layers_.push_back(std::move(lc));
  }
}

int64_t KVCache::bytes() const {
  int64_t n = 0;
  for (const auto& l : layers_)
    for (const auto& b : l.buffers) n += static_cast<int64_t>(b.nbytes());
  return n;
}

void KVCache::reset() {
  for (auto& l : layers_) l.len = 0;
}

}  // namespace gta::nn
