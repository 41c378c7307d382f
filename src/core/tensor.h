// Tensor: a strided view (shape, strides, offset in elements) into a Storage, with a dtype, a
// device, and the autograd fields (requires_grad, grad, the node that produced it, hooks).
// Copying a Tensor copies a handle: both refer to the same TensorImpl.
//
// The methods marked "(ops)" below record on the autograd tape or copy elements with the copy
// kernels, so they are defined in the ops library (ops/views.cpp) and backward() in the autograd
// engine (autograd/backward.cpp): they are declared here so that they read as methods. A layer
// below ops that calls one fails to link (docs/architecture.md, "How the build keeps the layers").
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/storage.h"

namespace gta {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

namespace autograd {
struct Node;
}

class Tensor;
using GradHook = std::function<void(Tensor& grad)>;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;             // accumulated gradient (leaves only)
  std::shared_ptr<autograd::Node> grad_fn;      // the op that produced this tensor (non-leaves)
  int output_nr = 0;                            // which of grad_fn's outputs this tensor is
  std::vector<GradHook> grad_ready_hooks;       // run when a backward pass finished this leaf's grad
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation ----
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  // full and ones fill on the host (ops).
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu()) {
    return full(shape, 1.0, dtype, device);
  }
  // Values converted to `dtype` (CPU). (ops)
  static Tensor from_doubles(const std::vector<double>& v, const Shape& shape, DType dtype = DType::f32);
  template <typename T>
  static Tensor from_vector(const std::vector<T>& v, const Shape& shape) {
    Tensor t = empty(shape, dtype_of<T>::value);
    copy_bytes(t.raw_data(), Device::cpu(), v.data(), Device::cpu(), v.size() * sizeof(T));
    return t;
  }

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  int ndim() const { return static_cast<int>(impl_->shape.size()); }
  int64_t size(int dim) const;  // negative dims count from the end
  int64_t numel() const { return shape_numel(impl_->shape); }
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device(); }
  bool is_contiguous() const;
  size_t nbytes() const { return numel() * dtype_size(dtype()); }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  const std::shared_ptr<Storage>& storage() const { return impl_->storage; }
  std::string str() const;  // "f32[2, 3] cpu"

  // ---- data access (CPU or device pointer at this view's offset) ----
  void* raw_data() const;
  template <typename T>
  T* data() const {
    check_dtype(dtype_of<T>::value);
    return static_cast<T*>(raw_data());
  }
  // Copies all elements to host as doubles, in logical (row-major) order. For tests and small reads. (ops)
  std::vector<double> to_doubles() const;
  double item() const;  // the single element, as double (ops)

  // ---- views and copies, recorded by autograd (ops) ----
  Tensor reshape(const Shape& shape) const;  // a view when contiguous, else a copy
  Tensor permute(const std::vector<int>& dims) const;
  Tensor transpose(int a, int b) const;
  Tensor slice(int dim, int64_t start, int64_t end) const;  // [start, end) along dim
  Tensor expand(const Shape& shape) const;  // broadcast size-1 dims (stride 0)
  Tensor contiguous() const;                 // itself when already contiguous
  Tensor to(DType dtype) const;              // converting copy (itself when the same)
  Tensor to(Device device) const;            // copy to another device (itself when the same)
  Tensor clone() const;                      // a contiguous copy with its own storage

  // ---- autograd ----
  bool requires_grad() const { return impl_->requires_grad; }
  Tensor& set_requires_grad(bool r);
  Tensor grad() const { return Tensor(impl_->grad); }
  void set_grad(const Tensor& g) { impl_->grad = g.impl_; }
  void zero_grad() { impl_->grad.reset(); }
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  Tensor detach() const;  // shares storage, no autograd history
  // Runs backward from this scalar (or from `grad` for non-scalars). (autograd engine)
  void backward(const Tensor& grad = Tensor()) const;
  // Called once per backward pass, after this leaf's gradient has been fully accumulated.
  void register_grad_ready_hook(GradHook hook) { impl_->grad_ready_hooks.push_back(std::move(hook)); }

 private:
  void check_dtype(DType t) const;
  std::shared_ptr<TensorImpl> impl_;
};

// Builds a tensor sharing `base`'s storage with new geometry (no autograd history).
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);

}  // namespace gta
