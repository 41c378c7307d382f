#include "optim/clip.h"

#include <cmath>
#include <algorithm>
#include <map>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "core/cuda_runtime.h"
#include "core/error.h"
#include "kernels/adamw.h"

namespace gta::optim {

namespace {

// Elements per block of the deterministic reduction.
constexpr int64_t kBlock = 1 << 14;

template <typename T>
inline double as_double(T v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return static_cast<double>(static_cast<float>(v));
  } else {
    return static_cast<double>(v);
  }
}

template <typename T>
double sum_sq(const T* g, int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t i1 = std::min(n, (b + 1) * kBlock);
    double s = 0;
    for (int64_t i = b * kBlock; i < i1; ++i) {
      const double x = as_double(g[i]);
      s += x * x;
    }
    partial[b] = s;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

template <typename T>
void scale_in_place(T* g, int64_t n, double factor) {
#pragma omp parallel for schedule(static) if (n >= kBlock)
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<T, bf16>) {
      g[i] = bf16(static_cast<float>(static_cast<double>(static_cast<float>(g[i])) * factor));
    } else {
      g[i] = static_cast<T>(static_cast<double>(g[i]) * factor);
    }
  }
}

// Calls fn(name, grad) for each distinct parameter's gradient, in list order.
template <typename Fn>
void for_each_grad(const std::vector<std::pair<std::string, Tensor>>& params, Fn&& fn) {
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& [name, p] : params) {
    if (!p.defined() || !seen.insert(p.impl()).second) continue;
    Tensor g = p.grad();
    if (!g.defined()) continue;
    fn(name, g);
  }
}

template <typename Fn>
auto dispatch_grad(const std::string& name, DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: return fn(float{});
    case DType::f64: return fn(double{});
    case DType::bf16: return fn(bf16{});
    default: fail("gradient of {} has dtype {}, expected a floating type", name, dtype_name(t));
  }
}

// GPU gradients the fused kernels take (f32/bf16, contiguous), grouped by device; others fall back to
// the host path.
bool on_gpu_path(const Tensor& g) {
  return g.device().is_cuda() && g.is_contiguous() && (g.dtype() == DType::f32 || g.dtype() == DType::bf16);
}

using GpuBatches = std::map<int, std::vector<kernels::GradRef>>;
void add_to_batch(GpuBatches& b, const Tensor& g) {
  b[g.device().index].push_back(kernels::GradRef{g.raw_data(), g.numel(), g.dtype()});
}

}  // namespace

double grad_norm(const std::vector<std::pair<std::string, Tensor>>& params) {
  return std::sqrt(grad_sum_squares(params));
}

double grad_sum_squares(const std::vector<std::pair<std::string, Tensor>>& params) {
  double total = 0;
  GpuBatches gpu;  // GPU gradients: one deterministic multi-tensor reduction per device
  for_each_grad(params, [&](const std::string& name, const Tensor& g) {
    if (on_gpu_path(g)) {
      add_to_batch(gpu, g);
      return;
    }
    Tensor h = g.detach().to(Device::cpu()).contiguous();
    total += dispatch_grad(name, h.dtype(), [&](auto tag) {
      using T = decltype(tag);
      return sum_sq(h.data<T>(), h.numel());
    });
  });
  for (const auto& [device, batch] : gpu) {
    cuda::DeviceGuard guard(device);
    total += kernels::grad_sum_squares(batch);
  }
  return total;
}

void scale_grads(const std::vector<std::pair<std::string, Tensor>>& params, double factor) {
  GpuBatches gpu;
  for_each_grad(params, [&](const std::string& name, const Tensor& g) {
    if (on_gpu_path(g)) {
      add_to_batch(gpu, g);
      return;
    }
    if (g.device().is_cpu() && g.is_contiguous()) {
      dispatch_grad(name, g.dtype(), [&](auto tag) {
        using T = decltype(tag);
        scale_in_place(g.data<T>(), g.numel(), factor);
      });
      return;
    }
    GTA_CHECK(g.is_contiguous(), "scale_grads: gradient of {} ({}) is not contiguous", name, g.str());
    Tensor h = g.detach().to(Device::cpu()).contiguous();
    dispatch_grad(name, h.dtype(), [&](auto tag) {
      using T = decltype(tag);
      scale_in_place(h.data<T>(), h.numel(), factor);
    });
    copy_bytes(g.raw_data(), g.device(), h.raw_data(), Device::cpu(), h.nbytes());
  });
  for (const auto& [device, batch] : gpu) {
    cuda::DeviceGuard guard(device);
    kernels::scale_grads(batch, factor);
  }
}

double clip_grad_norm(const std::vector<std::pair<std::string, Tensor>>& params, double max_norm) {
  GTA_CHECK(max_norm >= 0 && !std::isnan(max_norm), "clip_grad_norm: max_norm must be >= 0, got {}", max_norm);
  const double norm = grad_norm(params);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) scale_grads(params, max_norm / norm);
  return norm;
}

}  // namespace gta::optim
