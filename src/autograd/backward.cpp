#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "core/error.h"
#include "ops/ops.h"

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
  if (!needs_grad(inputs)) return;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs = std::move(inputs);
  node->backward = std::move(fn);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
}

// Post-order DFS from the root over tensors that require grad; reversed, it is a topological
// order in which every tensor comes after all tensors computed from it.
static std::vector<TensorImpl*> topological_order(TensorImpl* root) {
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
  std::unordered_map<TensorImpl*, Tensor> grads;
  grads[root.impl()] = seed;
  for (TensorImpl* t : order) {
    auto it = grads.find(t);
    if (it == grads.end()) continue;
    Tensor g = std::move(it->second);
    grads.erase(it);
    if (t->grad_fn) {
      Node& node = *t->grad_fn;
      std::vector<Tensor> in_grads = node.backward(g);
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
    } else {
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

}  // namespace gta::autograd
