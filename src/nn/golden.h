// Checks the model against a golden-vector file (tests/golden/README.md format): builds the
// model from the file's config, loads its weights, runs forward and backward in the requested
// dtype and compares logits, loss and every parameter gradient with the float64 expectations.
#pragma once
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"

namespace gta::nn {

struct GoldenGroupError {
  std::string group;   // "logits", "loss", "grad"
  double max_rel_err;  // max over the group's tensors of max|got - want| / max|want|
  std::string worst;   // the tensor where it occurs
};

struct GoldenReport {
  std::string path, attention_type;
  DType dtype;
  Device device;
  std::vector<GoldenGroupError> groups;
  int64_t kv_elems_expected = -1, kv_elems_model = -1;  // per token per layer
  double max_rel_err() const;
};

// The model runs on `device` (GPU: f32 or bf16); the comparison is made on the host.
GoldenReport check_golden(const std::string& path, DType dtype, Device device = Device::cpu());

}  // namespace gta::nn
