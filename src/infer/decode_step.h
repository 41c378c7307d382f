// One decode step of a model with a KV cache: tokens [B, 1] (i32) in, the logits of that position
// [B, V] out, the cache one token longer. `gta generate` and `gta bench decode` both decode
// through it.
//
// On a GPU in bf16 the step is a CUDA graph: the first step runs eagerly (it creates the GEMM
// plans and fills the allocator's cache), the second is captured and every step from then on
// replays it, with no allocation and no host work besides the launch and copying the tokens in.
// While captured, the cache's layers read the number of cached tokens from a device int32
// (nn::LayerCache::position), which the graph advances: RoPE, the cache writes and the decode
// kernels read it when they run, so one graph serves every position. The cache is grown to its
// full length before the capture (its buffers must not move). A model the graph cannot capture
// (a layer without decode kernels for its sizes, a host round trip) stays eager; path() says
// which and why. GTA_DECODE_GRAPH=0 keeps every step eager (for measurements).
#pragma once
#include <memory>
#include <string>

#include "core/cuda_graph.h"
#include "nn/model.h"

namespace gta::infer {

class DecodeStep {
 public:
  DecodeStep(const nn::Model& model, nn::KVCache& cache);
  ~DecodeStep();
  // The logits stay valid until the next run(). tokens on the host or on the model's device.
  Tensor run(const Tensor& tokens);
  // How the steps run, for reports: "decode kernels, CUDA graph", "decode kernels" (eager, on a
  // GPU in bf16, where the kernels take the sizes) or "general attention" (the CPU, f32).
  std::string path() const;

 private:
  Tensor eager(const Tensor& tokens);
  bool capture(int64_t batch);  // false: the model stays eager (why_eager_ says why)

  const nn::Model& model_;
  nn::KVCache& cache_;
  bool graph_wanted_;
  int64_t steps_ = 0;
  std::unique_ptr<cuda::StreamGraph> graph_;
  Tensor position_, tokens_, logits_;  // the graph's device position, input and output
  int64_t position_len_ = -1;          // the cache length position_ holds
  std::string why_eager_;
};

}  // namespace gta::infer
