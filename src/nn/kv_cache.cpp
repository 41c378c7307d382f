#include "nn/kv_cache.h"

#include <algorithm>

#include "core/error.h"
#include "core/strided.h"

namespace gta::nn {

Tensor LayerCache::append(size_t i, const Tensor& fresh) {
  Tensor& buf = buffers.at(i);
  const int64_t t = fresh.size(1);
  GTA_CHECK(len + t <= max_len, "KV cache full: {} cached + {} new > capacity {}", len, t, max_len);
  if (len + t > buf.size(1)) {
    const int64_t cap = std::min(max_len, std::max(len + t, 2 * buf.size(1)));
    Tensor grown = Tensor::zeros({buf.size(0), cap, buf.size(2), buf.size(3)}, buf.dtype(), buf.device());
    if (len > 0) copy_strided(grown.slice(1, 0, len), buf.slice(1, 0, len));
    buf = std::move(grown);
  }
  copy_strided(buf.slice(1, len, len + t), fresh.detach());
  return buf.slice(1, 0, len + t).contiguous();
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

void KVCache::reset() {
  for (auto& l : layers_) l.len = 0;
}

}  // namespace gta::nn
