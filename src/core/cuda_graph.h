// CUDA graphs of the current device's stream, for replaying a decode step without the host
// launching each kernel (infer/decode_step.h). Plain C++ (no CUDA types).
//
// StreamGraph captures the work queued on the device's stream (cuda_context.h) between
// begin_capture() and end_capture(), in relaxed mode, and replay() launches it again on that
// stream. Memory: every device block allocated while the capture is open belongs to the graph.
// Freed (during the capture or after it) such a block is parked, not handed to later
// allocations, until the graph is destroyed; so the temporaries a replay writes are never memory
// that something else owns by then. Blocks still live (the step's outputs) stay with their
// tensors. Captured work must not synchronize with the host (that fails the capture, and
// end_capture() or the failing call throws).
#pragma once

namespace gta::cuda {

class StreamGraph {
 public:
  explicit StreamGraph(int device);
  ~StreamGraph();
  StreamGraph(const StreamGraph&) = delete;
  StreamGraph& operator=(const StreamGraph&) = delete;

  void begin_capture();
  void end_capture();    // ends the capture and instantiates the graph
  void abort_capture();  // ends a capture that threw part way: drops what was captured
  void replay();
  bool ready() const { return exec_ != nullptr; }

 private:
  int device_;
  int pool_ = -1;  // the allocator's pool of this graph's blocks
  bool capturing_ = false;
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
};

}  // namespace gta::cuda
