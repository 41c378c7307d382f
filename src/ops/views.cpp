// The Tensor methods that record on the autograd tape or copy elements: views (reshape, permute,
// slice, expand), copies and conversions (clone, to), and what is built from them (full,
// from_doubles, to_doubles). core/tensor.h declares them so they read as methods; they are
// defined here because they record nodes (autograd/tape.h), call ops (expand's backward is
// ops::sum_to) and run the copy kernels, all of which sit above core.
#include <numeric>
#include <utility>

#include "autograd/tape.h"
#include "core/error.h"
#include "core/strided.h"
#include "ops/copy.h"
#include "ops/ops.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/copy.h"
#endif

namespace gta {

// ---- creation and reads through copies ----
Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, Device::cpu());
  ops::fill_(t, value);
  return t.to(device);  // filled on the host: constants are small (seeds, scalars)
}

Tensor Tensor::from_doubles(const std::vector<double>& v, const Shape& shape, DType dtype) {
  GTA_CHECK(static_cast<int64_t>(v.size()) == shape_numel(shape), "from_doubles: {} values for shape {}", v.size(),
            shape_str(shape));
  Tensor src = from_vector(v, shape);
  return dtype == DType::f64 ? src : src.detach().to(dtype);
}

std::vector<double> Tensor::to_doubles() const {
  Tensor h = detach().to(Device::cpu()).to(DType::f64).contiguous();
  const double* p = h.data<double>();
  return std::vector<double>(p, p + h.numel());
}

double Tensor::item() const {
  GTA_CHECK(numel() == 1, "item() on a tensor with {} elements", numel());
  return to_doubles()[0];
}

// ---- views ----
Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape s = new_shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      GTA_CHECK(infer < 0, "reshape {}: more than one -1", shape_str(new_shape));
      infer = static_cast<int>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    GTA_CHECK(known > 0 && numel() % known == 0, "reshape {} -> {}: sizes do not divide", shape_str(shape()),
              shape_str(new_shape));
    s[infer] = numel() / known;
  }
  GTA_CHECK(shape_numel(s) == numel(), "reshape {} -> {}: element counts differ", shape_str(shape()),
            shape_str(new_shape));
  Tensor src = contiguous();
  Tensor out = make_view(src, s, contiguous_strides(s), src.offset());
  Shape in_shape = shape();
  autograd::record(out, "reshape", {src}, [in_shape](const Tensor& g) -> std::vector<Tensor> {
    return {g.reshape(in_shape)};
  });
  return out;
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
  int n = ndim();
  GTA_CHECK(static_cast<int>(dims.size()) == n, "permute: {} dims for a {}-d tensor", dims.size(), n);
  Shape s(n), st(n);
  std::vector<int> inverse(n, -1);
  for (int i = 0; i < n; ++i) {
    int d = dims[i] < 0 ? dims[i] + n : dims[i];
    GTA_CHECK(d >= 0 && d < n && inverse[d] < 0, "permute: bad dimension list");
    inverse[d] = i;
    s[i] = shape()[d];
    st[i] = strides()[d];
  }
  Tensor out = make_view(*this, s, st, offset());
  autograd::record(out, "permute", {*this}, [inverse](const Tensor& g) -> std::vector<Tensor> {
    return {g.permute(inverse)};
  });
  return out;
}

Tensor Tensor::transpose(int a, int b) const {
  std::vector<int> dims(ndim());
  std::iota(dims.begin(), dims.end(), 0);
  int n = ndim();
  std::swap(dims[a < 0 ? a + n : a], dims[b < 0 ? b + n : b]);
  return permute(dims);
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end) const {
  int d = dim < 0 ? dim + ndim() : dim;
  GTA_CHECK(d >= 0 && d < ndim(), "slice: dimension {} out of range for {}", dim, str());
  GTA_CHECK(0 <= start && start <= end && end <= shape()[d], "slice [{}, {}) out of range for dim {} of {}", start,
            end, d, str());
  Shape s = shape();
  s[d] = end - start;
  Tensor out = make_view(*this, s, strides(), offset() + start * strides()[d]);
  Shape in_shape = shape();
  autograd::record(out, "slice", {*this}, [in_shape, d, start, end](const Tensor& g) -> std::vector<Tensor> {
    Tensor full = Tensor::zeros(in_shape, g.dtype(), g.device());
    copy_strided(full.slice(d, start, end), g);
    return {full};
  });
  return out;
}

Tensor Tensor::expand(const Shape& new_shape) const {
  int n = static_cast<int>(new_shape.size());
  GTA_CHECK(n >= ndim(), "expand {} to {}: fewer dimensions", shape_str(shape()), shape_str(new_shape));
  Shape st(n, 0);
  for (int i = 0; i < n; ++i) {
    int j = i - (n - ndim());
    if (j < 0) continue;
    if (shape()[j] == new_shape[i]) {
      st[i] = strides()[j];
    } else {
      GTA_CHECK(shape()[j] == 1, "expand {} to {}: dimension {} is not 1", shape_str(shape()),
                shape_str(new_shape), j);
    }
  }
  Tensor out = make_view(*this, new_shape, st, offset());
  Shape in_shape = shape();
  autograd::record(out, "expand", {*this}, [in_shape](const Tensor& g) -> std::vector<Tensor> {
    return {ops::sum_to(g, in_shape)};
  });
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape(), dtype(), device());
  if (is_contiguous())
    copy_bytes(out.raw_data(), device(), raw_data(), device(), nbytes());
  else
    copy_strided(out, *this);
  autograd::record(out, "clone", {*this}, [](const Tensor& g) -> std::vector<Tensor> { return {g}; });
  return out;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = Tensor::empty(shape(), t, device());
  copy_strided(out, *this);
  if (is_floating(t)) {
    DType from = dtype();
    autograd::record(out, "to_dtype", {*this}, [from](const Tensor& g) -> std::vector<Tensor> {
      return {g.to(from)};
    });
  }
  return out;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor src = contiguous();
  Tensor out = Tensor::empty(shape(), dtype(), dev);
  copy_bytes(out.raw_data(), dev, src.raw_data(), src.device(), nbytes());
  Device from = device();
  autograd::record(out, "to_device", {src}, [from](const Tensor& g) -> std::vector<Tensor> {
    return {g.to(from)};
  });
  return out;
}

// ---- strided copy ----
void copy_strided(const Tensor& dst, const Tensor& src) {
  GTA_CHECK(dst.shape() == src.shape(), "copy: shape {} into {}", shape_str(src.shape()), shape_str(dst.shape()));
#ifdef GTA_WITH_CUDA
  if (dst.device().is_cuda() || src.device().is_cuda()) {
    GTA_CHECK(dst.device() == src.device(), "strided copy between {} and {}: move one with .to(device) first",
              src.str(), dst.str());
    if (dst.numel() == 0) return;
    cuda::DeviceGuard guard(dst.device().index);
    kernels::copy_strided(dst.dtype(), dst.raw_data(), dst.strides().data(), src.dtype(), src.raw_data(),
                          src.strides().data(), dst.shape().data(), dst.ndim());
    return;
  }
#endif
  GTA_CHECK(dst.device().is_cpu() && src.device().is_cpu(), "strided copy between {} and {} is CPU-only",
            src.str(), dst.str());
  const int n = dst.ndim();
  const int64_t total = dst.numel();
  if (total == 0) return;
  const int64_t inner = n ? dst.shape()[n - 1] : 1;
  const int64_t rows = total / inner;
  const int64_t ds = n ? dst.strides()[n - 1] : 1, ss = n ? src.strides()[n - 1] : 1;
  dispatch_all(dst.dtype(), [&](auto dtag) {
    using D = decltype(dtag);
    dispatch_all(src.dtype(), [&](auto stag) {
      using S = decltype(stag);
      D* dp = static_cast<D*>(dst.raw_data());
      const S* sp = static_cast<const S*>(src.raw_data());
#pragma omp parallel for schedule(static) if (total > 65536)
      for (int64_t r = 0; r < rows; ++r) {
        // Offsets of row r: unravel r over the leading n-1 dims.
        int64_t rem = r, doff = 0, soff = 0;
        for (int i = n - 2; i >= 0; --i) {
          int64_t idx = rem % dst.shape()[i];
          rem /= dst.shape()[i];
          doff += idx * dst.strides()[i];
          soff += idx * src.strides()[i];
        }
        for (int64_t j = 0; j < inner; ++j) {
          if constexpr (std::is_same_v<D, S>)
            dp[doff + j * ds] = sp[soff + j * ss];
          else
            dp[doff + j * ds] = from_double<D>(to_double<S>(sp[soff + j * ss]));
        }
      }
    });
  });
}

}  // namespace gta
