#include "nn/params.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/strided.h"
#include "ops/copy.h"
#include "ops/ops.h"

namespace gta::nn {

Tensor Params::add(const std::string& name, const Shape& shape, Init init, double std) {
  GTA_CHECK(!has(name), "parameter {} registered twice", name);
  Tensor t;
  if (init == Init::normal) {
    // Drawn and converted a chunk at a time: drawing all of a parameter first staged 8 bytes per
    // weight plus an f64 tensor of them, for a 1B model's embedding 0.5 GB twice, and the page
    // clearing and copies took about half of the model's construction. fill_normal(n) draws what
    // n calls of normal() would, so the chunks give the same weights as one call.
    constexpr int64_t kChunk = int64_t{1} << 20;
    const int64_t n = shape_numel(shape), es = static_cast<int64_t>(dtype_size(dtype_));
    t = Tensor::empty(shape, dtype_);
    std::vector<double> part;
    for (int64_t at = 0; at < n; at += kChunk) {
      part.resize(static_cast<size_t>(std::min(kChunk, n - at)));
      rng_->fill_normal(part.data(), part.size(), std);
      const Tensor converted = Tensor::from_doubles(part, {static_cast<int64_t>(part.size())}, dtype_);
      std::memcpy(static_cast<char*>(t.raw_data()) + at * es, converted.raw_data(),
                  part.size() * static_cast<size_t>(es));
    }
  } else {
    t = Tensor::full(shape, init == Init::ones ? 1.0 : 0.0, dtype_);
  }
  t.set_requires_grad(true);
  index_[name] = list_.size();
  list_.emplace_back(name, t);
  return t;
}

Tensor Params::get(const std::string& name) const {
  auto it = index_.find(name);
  GTA_CHECK(it != index_.end(), "no parameter named {}", name);
  return list_[it->second].second;
}

int64_t Params::count() const {
  int64_t n = 0;
  for (const auto& [name, t] : list_) n += t.numel();
  return n;
}

void Params::load(const std::map<std::string, Tensor>& tensors, const std::string& source,
                  const std::vector<std::string>& ignore_prefixes) {
  for (const auto& [name, t] : list_) {
    auto it = tensors.find(name);
    GTA_CHECK(it != tensors.end(), "{}: missing tensor {} (shape {})", source, name, shape_str(t.shape()));
    GTA_CHECK(it->second.shape() == t.shape(), "{}: tensor {} has shape {}, the model expects {}", source, name,
              shape_str(it->second.shape()), shape_str(t.shape()));
    GTA_CHECK(is_floating(it->second.dtype()), "{}: tensor {} has dtype {}, expected a floating type", source, name,
              dtype_name(it->second.dtype()));
  }
  for (const auto& [name, t] : tensors) {
    if (has(name)) continue;
    bool ignored = false;
    for (const auto& p : ignore_prefixes) ignored = ignored || name.rfind(p, 0) == 0;
    GTA_CHECK(ignored, "{}: unexpected tensor {} (not a parameter of this model)", source, name);
  }
  for (const auto& [name, t] : list_) {
    Tensor src = tensors.at(name).detach().to(Device::cpu());
    if (t.device().is_cpu()) {
      copy_strided(t, src);
    } else {
      Tensor conv = src.to(t.dtype()).contiguous();
      copy_bytes(t.raw_data(), t.device(), conv.raw_data(), Device::cpu(), conv.nbytes());
    }
  }
}

void Params::zero_grad() {
  for (auto& [name, p] : list_) p.zero_grad();
}

void Params::move_to(Device device) {
  for (auto& [name, t] : list_) {
    if (t.device() == device) continue;
    Tensor moved = t.detach().contiguous().to(device);
    TensorImpl* impl = t.impl();
    impl->storage = moved.storage();
    impl->offset = moved.offset();
    impl->strides = moved.strides();
    impl->grad.reset();
  }
}

Device Params::device() const { return list_.empty() ? Device::cpu() : list_.front().second.device(); }

}  // namespace gta::nn
