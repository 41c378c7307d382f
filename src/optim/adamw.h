// AdamW (Loshchilov & Hutter) over named parameters, with decoupled weight decay per group.
//
// For each parameter p with gradient g, at step t = 1, 2, ...:
//   m = b1 m + (1 - b1) g
//   v = b2 v + (1 - b2) g^2
//   p = p * (1 - lr wd)                                       (decay group only; decoupled)
//   p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// The decay is applied first, as its own multiplication, exactly as PyTorch's AdamW does; the
// Adam term does not depend on p, so this equals p - lr wd p_old - lr * adam(p_old).
//
// Precision: m and v are f32 (f64 for f64 parameters). bf16 parameters also get an f32 master
// copy: the update runs on the master and the parameter receives its bf16 rounding, so small
// updates are never lost to bf16 rounding ("fp32 master weights").
//
// Groups: by default only matrices (ndim >= 2) decay. Excluded unless OptimConfig says
// otherwise: norms (name contains "norm", which covers "layernorm"), biases (name ends in
// ".bias"), other vectors/scalars (ndim < 2) -> decay_norms_and_biases; embeddings (name contains
// "embed_tokens", or a tensor that *is* such an embedding, e.g. a tied lm_head) ->
// decay_embeddings. An untied lm_head is an ordinary matrix and decays.
//
// A tensor listed twice (same TensorImpl under two names) is updated once, under its first name.
// Parameters without a gradient at step() are skipped (their m, v and p stay as they are); the
// step count t is shared by all parameters.
//
// Determinism: the update is elementwise; OpenMP splits elements over threads, and every element's
// arithmetic is the same whatever the thread count, so results are bit-identical run to run.
//
// Devices: CPU parameters are updated in place. f32 and bf16 parameters on a GPU keep their state
// (m, v and the bf16 master) on that GPU and are all updated by one fused multi-tensor launch per
// device (kernels/adamw.cu; same arithmetic as the CPU kernel in f32). Other GPU parameters (f64)
// go through a host round trip with host-side state. state() hands out the tensors where they
// live; load_state() copies into them wherever they live.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/tensor.h"

namespace gta::optim {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// The group rules above, by name and shape (embedding aliases are resolved by AdamW itself).
bool is_norm_name(const std::string& name);       // contains "norm"
bool is_bias_name(const std::string& name);       // ends with ".bias"
bool is_embedding_name(const std::string& name);  // contains "embed_tokens"
bool default_decays(const std::string& name, const Shape& shape, const config::OptimConfig& cfg);

// Optimizer state for checkpoints: "<param>.exp_avg", "<param>.exp_avg_sq" (and "<param>.master"
// for bf16 parameters), plus the step count.
struct AdamWState {
  std::map<std::string, Tensor> tensors;
  int64_t step = 0;
};

class AdamW {
 public:
  // Uses lr only through step(lr); beta1, beta2, eps, weight_decay and the decay switches come
  // from `cfg`. Parameters must be floating (f32, bf16, f64) and of distinct names.
  AdamW(const NamedTensors& params, const config::OptimConfig& cfg);

  // One update with learning rate `lr` from each parameter's .grad(). Increments the step count
  // (even when no parameter has a gradient).
  void step(double lr);
  // Drops every parameter's gradient.
  void zero_grad();

  int64_t step_count() const { return step_; }
  const config::OptimConfig& config() const { return cfg_; }
  // Whether `name` is in the decay group (throws for an unknown name).
  bool decays(const std::string& name) const;
  std::vector<std::string> decay_group() const;     // names, in parameter order
  std::vector<std::string> no_decay_group() const;  // names, in parameter order (aliases excluded)

  // The live state tensors (handles, not copies: clone them for a snapshot) and the step count.
  AdamWState state() const;
  // Copies `st` into the state. Every expected tensor must be present with the parameter's shape
  // and a floating dtype; unknown tensors and a negative step are errors. `source` (a file name)
  // starts every error message.
  void load_state(const AdamWState& st, const std::string& source = "optimizer state");

 private:
  struct Slot {
    std::string name;
    Tensor param;
    Tensor exp_avg, exp_avg_sq;  // f32, or f64 for f64 parameters; always on the host
    Tensor master;               // f32 copy of a bf16 parameter; undefined otherwise
    bool decay = false;
  };
  const Slot& slot(const std::string& name) const;

  config::OptimConfig cfg_;
  std::vector<Slot> slots_;
  std::vector<std::string> aliases_;  // names skipped because their tensor is listed earlier
  std::map<std::string, size_t> index_;
  int64_t step_ = 0;
};

}  // namespace gta::optim
