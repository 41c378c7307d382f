#include "infer/decode_step.h"

#include <cstdlib>
#include <exception>
#include <vector>

#include "autograd/tape.h"
#include "core/cuda_runtime.h"
#include "core/error.h"
#include "ops/decode_position.h"

namespace gta::infer {

namespace {

bool graph_allowed() {
  const char* e = std::getenv("GTA_DECODE_GRAPH");
  return !(e && std::string(e) == "0");
}

}  // namespace

DecodeStep::DecodeStep(const nn::Model& model, nn::KVCache& cache)
    : model_(model),
      cache_(cache),
      graph_wanted_(model.params().device().is_cuda() && model.params().dtype() == DType::bf16 && graph_allowed()) {}

DecodeStep::~DecodeStep() = default;

Tensor DecodeStep::eager(const Tensor& tokens) {
  Tensor logits = model_.forward(tokens.to(model_.params().device()), &cache_);  // [B, 1, V]
  return logits.reshape({logits.size(0), logits.size(2)});
}

bool DecodeStep::capture(int64_t batch) {
  const Device dev = model_.params().device();
  const int64_t len0 = cache_.len();
  cache_.reserve();  // the graph holds the buffers' addresses: they must not move
  position_ = Tensor::from_vector(std::vector<int32_t>{static_cast<int32_t>(len0)}, {1}).to(dev);
  position_len_ = len0;
  tokens_ = Tensor::zeros({batch, 1}, DType::i32, dev);
  auto graph = std::make_unique<cuda::StreamGraph>(dev.index);
  cache_.set_position(position_);
  try {
    graph->begin_capture();
    Tensor logits = model_.forward(tokens_, &cache_);
    ops::advance_position(position_, 1);
    graph->end_capture();
    logits_ = logits.reshape({batch, logits.size(2)});
  } catch (const std::exception& e) {
    graph->abort_capture();
    why_eager_ = e.what();
  }
  // Capturing ran nothing (the layers only counted the token on the host): the first replay makes
  // the step, and from here on the host's length is advanced by run().
  cache_.set_position(Tensor());
  cache_.set_len(len0);
  if (!why_eager_.empty()) return false;
  graph_ = std::move(graph);
  return true;
}

Tensor DecodeStep::run(const Tensor& tokens) {
  GTA_CHECK(tokens.ndim() == 2 && tokens.size(1) == 1 && tokens.dtype() == DType::i32,
            "decode step: expected i32 tokens [B, 1], got {}", tokens.str());
  autograd::NoGradGuard no_grad;
  const int64_t B = tokens.size(0);
  if (graph_wanted_ && !graph_ && why_eager_.empty() && steps_ > 0) capture(B);
  ++steps_;
  if (!graph_) return eager(tokens);
  GTA_CHECK(B == tokens_.size(0), "decode step: the graph was captured for batch {}, got {}", tokens_.size(0), B);
  GTA_CHECK(cache_.len() < cache_.max_len(), "KV cache full: {} tokens cached, capacity {}", cache_.len(),
            cache_.max_len());
  Tensor t = tokens.contiguous();
  if (t.device().is_cpu()) {  // the graph reads ids unchecked: those from the host are checked here
    const int64_t V = model_.config().vocab_size;
    for (int64_t b = 0; b < B; ++b)
      GTA_CHECK(t.data<int32_t>()[b] >= 0 && t.data<int32_t>()[b] < V,
                "decode step: token id {} is outside the model vocabulary [0, {})", t.data<int32_t>()[b], V);
  }
  cuda::copy(tokens_.raw_data(), true, t.raw_data(), t.device().is_cuda(), static_cast<size_t>(B) * sizeof(int32_t));
  if (position_len_ != cache_.len()) {  // the cache moved since the last replay (another forward, a reset)
    const int32_t len = static_cast<int32_t>(cache_.len());
    cuda::copy(position_.raw_data(), true, &len, false, sizeof(int32_t));
  }
  graph_->replay();
  cache_.set_len(cache_.len() + 1);
  position_len_ = cache_.len();
  return logits_;
}

std::string DecodeStep::path() const {
  if (graph_) return "decode kernels, CUDA graph";
  if (!(model_.params().device().is_cuda() && model_.params().dtype() == DType::bf16)) return "general attention";
  return why_eager_.empty() ? "decode kernels" : "decode kernels, eager (no CUDA graph: " + why_eager_ + ")";
}

}  // namespace gta::infer
