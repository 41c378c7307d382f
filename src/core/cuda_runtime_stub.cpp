// CPU-only builds (CMakeLists.txt compiles this file in place of cuda_runtime.cu): the CUDA services
// report that the backend is absent. Queries that make sense without a GPU (device count, cache
// statistics, options) answer; everything else throws.
#include "core/cuda_graph.h"
#include "core/cuda_runtime.h"
#include "core/error.h"

namespace gta::cuda {

int device_count() { return 0; }
[[noreturn]] static void no_cuda() {
  fail("this build of gta has no CUDA backend (rebuild with nvcc present and -DGTA_CUDA=ON)");
}
void* device_alloc(size_t, int) { no_cuda(); }
void device_free(void*, int) {}
void empty_cache() {}
MemoryStats memory_stats(int) { return {}; }
void reset_peak_memory_stats(int) {}
size_t round_allocation_size(size_t n) { return n; }
void copy(void*, bool, const void*, bool, size_t) { no_cuda(); }
void memset_zero(void*, size_t, int) { no_cuda(); }
void synchronize(int) {}
int current_device() { return 0; }
DeviceGuard::DeviceGuard(int) { no_cuda(); }
DeviceGuard::~DeviceGuard() {}
StreamTimer::StreamTimer(int) : device_(0) { no_cuda(); }
StreamTimer::~StreamTimer() {}
void StreamTimer::start() { no_cuda(); }
void StreamTimer::stop() { no_cuda(); }
float StreamTimer::elapsed_ms() const { no_cuda(); }
StreamGraph::StreamGraph(int) : device_(0) { no_cuda(); }
StreamGraph::~StreamGraph() {}
void StreamGraph::begin_capture() { no_cuda(); }
void StreamGraph::end_capture() { no_cuda(); }
void StreamGraph::abort_capture() {}
void StreamGraph::replay() { no_cuda(); }
void set_allow_tf32(bool) {}
bool allow_tf32() { return false; }

}  // namespace gta::cuda
