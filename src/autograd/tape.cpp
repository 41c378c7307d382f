// The tape: gradient mode and the recording of nodes. It needs only the Tensor (core), so every op
// records through it; the backward pass that walks the nodes is the engine (autograd/backward.cpp).
#include "autograd/tape.h"

#include <memory>

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

// The deleter of every node. Deleting a node releases its inputs; an input nothing else holds dies
// with it, and with that input its own node: left to the destructors, a chain of N ops nests N
// levels of them, and a long graph (Autograd.DeepChainDoesNotOverflowTheStack: 20000 ops)
// overflowed the stack where frames are large (clang's ASan build). So the nodes of inputs about to
// die are taken out of them first and deleted here, one at a time, from a worklist.
static void delete_node(Node* node) {
  std::vector<std::shared_ptr<Node>> pending;
  auto release_inputs = [&pending](Node& n) {
    for (Tensor& in : n.inputs)
      if (in.defined() && in.impl_ptr().use_count() == 1 && in.impl()->grad_fn)
        pending.push_back(std::move(in.impl()->grad_fn));
    n.inputs.clear();
  };
  release_inputs(*node);
  delete node;
  while (!pending.empty()) {
    std::shared_ptr<Node> next = std::move(pending.back());
    pending.pop_back();
    // The last reference: its inputs are released here, so its own deletion (this function, one
    // level down) finds none left. Otherwise another output of a multi-output node still holds it.
    if (next.use_count() == 1) release_inputs(*next);
  }
}

void record_outputs(const std::vector<Tensor*>& outs, const char* name, std::vector<Tensor> inputs,
                    MultiBackwardFn fn) {
  if (!needs_grad(inputs)) return;
  std::shared_ptr<Node> node(new Node, delete_node);
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
