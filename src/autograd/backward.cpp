// The engine of autograd: the backward pass over the nodes the tape (autograd/tape.h) recorded.
// It sums gradients with ops::add, so it sits above ops; the tape sits below them.
#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "autograd/tape.h"
#include "core/error.h"
#include "ops/ops.h"

namespace gta::autograd {

namespace {

// Post-order DFS from the root over tensors that require grad; reversed, it is a topological
// order in which every tensor comes after all tensors computed from it. The outputs of one node
// all come before that node's inputs (each output has an edge to every input).
std::vector<TensorImpl*> topological_order(TensorImpl* root) {
  std::vector<TensorImpl*> order;
  std::unordered_set<TensorImpl*> seen;
  std::vector<std::pair<TensorImpl*, size_t>> stack{{root, 0}};
  seen.insert(root);
  while (!stack.empty()) {
    auto& [t, next] = stack.back();
    size_t n_inputs = t->grad_fn ? t->grad_fn->inputs.size() : 0;
    if (next < n_inputs) {
      TensorImpl* in = t->grad_fn->inputs[next++].impl();
      if (in && in->requires_grad && seen.insert(in).second) stack.push_back({in, 0});
    } else {
      order.push_back(t);
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};
}

// Runs the backward pass from `root` with seed gradient `grad` (ones for a scalar root).
void run_backward(const Tensor& root, const Tensor& grad) {
  GTA_CHECK(root.requires_grad(), "backward() on a tensor that does not require grad");
  Tensor seed = grad;
  if (!seed.defined()) {
    GTA_CHECK(root.numel() == 1, "backward() without a gradient needs a scalar, got shape {}",
              shape_str(root.shape()));
    seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  GTA_CHECK(seed.shape() == root.shape(), "backward(): gradient shape {} != tensor shape {}",
            shape_str(seed.shape()), shape_str(root.shape()));
  NoGradGuard no_grad;
  std::vector<TensorImpl*> order = topological_order(root.impl());
  // A node with several outputs runs when the last of them (in `order`) is reached: by then every
  // output's consumers have run, and none of its inputs has. Until then the outputs' gradients
  // wait in `held`; `ahead` counts the node's outputs still to come.
  std::unordered_map<Node*, int> ahead;
  std::unordered_map<Node*, std::vector<Tensor>> held;
  for (TensorImpl* t : order)
    if (t->grad_fn && t->grad_fn->n_outputs > 1) ++ahead[t->grad_fn.get()];
  std::unordered_map<TensorImpl*, Tensor> grads;
  grads[root.impl()] = seed;
  for (TensorImpl* t : order) {
    Tensor g;
    if (auto it = grads.find(t); it != grads.end()) {
      g = std::move(it->second);
      grads.erase(it);
    }
    if (t->grad_fn) {
      Node& node = *t->grad_fn;
      std::vector<Tensor> grad_outs;
      if (node.n_outputs == 1) {
        if (!g.defined()) continue;
        grad_outs = {std::move(g)};
      } else {
        std::vector<Tensor>& waiting = held[&node];
        waiting.resize(node.n_outputs);
        waiting[t->output_nr] = std::move(g);
        if (--ahead[&node] > 0) continue;
        grad_outs = std::move(waiting);
        held.erase(&node);
        if (std::none_of(grad_outs.begin(), grad_outs.end(), [](const Tensor& x) { return x.defined(); })) continue;
      }
      std::vector<Tensor> in_grads = node.backward(grad_outs);
      GTA_CHECK(in_grads.size() == node.inputs.size(), "op {}: backward returned {} gradients for {} inputs",
                node.name, in_grads.size(), node.inputs.size());
      for (size_t i = 0; i < in_grads.size(); ++i) {
        const Tensor& in = node.inputs[i];
        if (!in.defined() || !in.requires_grad() || !in_grads[i].defined()) continue;
        GTA_CHECK(in_grads[i].shape() == in.shape(), "op {}: gradient {} has shape {}, input has {}", node.name, i,
                  shape_str(in_grads[i].shape()), shape_str(in.shape()));
        auto [slot, fresh] = grads.try_emplace(in.impl(), in_grads[i]);
        if (!fresh) slot->second = ops::add(slot->second, in_grads[i]);
      }
    } else if (g.defined()) {
      // A leaf: every consumer has run (topological order), so its gradient is complete.
      if (t->grad)
        ops::add_(Tensor(t->grad), g);
      else
        t->grad = g.clone().impl_ptr();  // own storage: later accumulation must not alias
      Tensor leaf_grad(t->grad);
      for (auto& hook : t->grad_ready_hooks) hook(leaf_grad);
    }
  }
}

}  // namespace
}  // namespace gta::autograd

namespace gta {

void Tensor::backward(const Tensor& grad) const { autograd::run_backward(*this, grad); }

}  // namespace gta
