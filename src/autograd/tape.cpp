// The tape: gradient mode and the recording of nodes. It needs only the Tensor (core), so every op
// records through it; the backward pass that walks the nodes is the engine (autograd/backward.cpp).
#include "autograd/tape.h"

namespace gta::autograd {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(Tensor& out, const char* name, std::vector<Tensor> inputs, BackwardFn fn) {
  record_outputs({&out}, name, std::move(inputs),
                 [fn = std::move(fn)](const std::vector<Tensor>& grad_outs) { return fn(grad_outs[0]); });
}

void record_outputs(const std::vector<Tensor*>& outs, const char* name, std::vector<Tensor> inputs,
                    MultiBackwardFn fn) {
  if (!needs_grad(inputs)) return;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs = std::move(inputs);
  node->n_outputs = static_cast<int>(outs.size());
  node->backward = std::move(fn);
  for (size_t i = 0; i < outs.size(); ++i) {
    TensorImpl* out = outs[i]->impl();
    out->requires_grad = true;
    out->grad_fn = node;
    out->output_nr = static_cast<int>(i);
  }
}

}  // namespace gta::autograd
