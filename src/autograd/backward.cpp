#include <algorithm>
#include <memory>
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

// Post-order DFS from the root over tensors that require grad; reversed, it is a topological
// order in which every tensor comes after all tensors computed from it. The outputs of one node
// all come before that node's inputs (each output has an edge to every input).
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

}  // namespace gta::autograd
