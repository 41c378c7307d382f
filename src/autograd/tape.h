// The autograd tape. An op that produces `out` from inputs records a Node on `out`: the inputs
// and a function that maps d(loss)/d(out) to d(loss)/d(input_i) for every input. Tensor::backward()
// (the engine, autograd/backward.cpp, a layer above ops) walks the graph from the loss in reverse
// topological order, summing the gradients that reach each tensor (a tensor used twice receives
// both contributions) and accumulating them into the `.grad` of leaves that require it.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace gta::autograd {

// Returns one gradient per input, in the order of Node::inputs; an undefined Tensor means "no
// gradient" (e.g. for integer inputs). Runs with gradient recording off.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;
// The same for an op with several outputs: it receives one gradient per output, in the order the
// outputs were recorded, undefined for an output no gradient reached (at least one is defined).
using MultiBackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outs)>;

struct Node {
  std::string name;             // op name, for error messages
  std::vector<Tensor> inputs;   // only the handles; do not capture the outputs themselves (cycle)
  int n_outputs = 1;            // the tensors that share this node (TensorImpl::output_nr tells which)
  MultiBackwardFn backward;     // a single-output op's BackwardFn, wrapped
};

// Gradient recording on/off for the current thread (on by default).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when recording is on and some input requires a gradient.
bool needs_grad(const std::vector<Tensor>& inputs);

// Attaches a node to `out` when needs_grad(inputs). Captures in `fn` must be detached tensors or
// plain values (never `out` itself, which would form a reference cycle).
void record(Tensor& out, const char* name, std::vector<Tensor> inputs, BackwardFn fn);
// The same for an op with several outputs: one node shared by all of `outs` (output i gets
// output_nr i). backward() runs it once, after every output's gradient is complete.
void record_outputs(const std::vector<Tensor*>& outs, const char* name, std::vector<Tensor> inputs,
                    MultiBackwardFn fn);

}  // namespace gta::autograd
