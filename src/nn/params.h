// The parameters of a model: tensors under their Hugging Face names, in creation order. Modules
// hold handles to the tensors registered here, so replacing a tensor's contents (loading a
// checkpoint) goes through copy into the existing tensor, never rebinding.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace gta::nn {

enum class Init { normal, zeros, ones };

class Params {
 public:
  Params(DType dtype, Rng* rng) : dtype_(dtype), rng_(rng) {}
  // Creates, initialises and registers a parameter (requires_grad on). `std` for Init::normal.
  Tensor add(const std::string& name, const Shape& shape, Init init, double std = 0.02);
  Tensor get(const std::string& name) const;
  bool has(const std::string& name) const { return index_.count(name) > 0; }
  const std::vector<std::pair<std::string, Tensor>>& all() const { return list_; }
  int64_t count() const;  // total number of elements
  DType dtype() const { return dtype_; }

  // Copies values into the parameters (dtype converted). Every parameter must be present with
  // its exact shape; extra tensors are an error unless their names are in `ignore_prefixes`.
  void load(const std::map<std::string, Tensor>& tensors, const std::string& source,
            const std::vector<std::string>& ignore_prefixes = {});

  // Moves every parameter's storage to `device` in place: the handles the modules hold stay
  // valid (and tied tensors stay tied). Gradients are dropped.
  void move_to(Device device);
  Device device() const;
  // Drops every parameter's gradient (not only those an optimizer holds: under ZeRO-1 each rank's
  // AdamW has its own parameters, but every gradient is communicated).
  void zero_grad();

 private:
  DType dtype_;
  Rng* rng_;
  std::vector<std::pair<std::string, Tensor>> list_;
  std::map<std::string, size_t> index_;
};

}  // namespace gta::nn
