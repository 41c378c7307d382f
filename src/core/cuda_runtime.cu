// CUDA builds: the caching device allocator, the per-device stream and cuBLASLt handle, copies on
// that stream, and the error helpers of cuda_context.h. A machine without a GPU (or without a
// driver) reports zero devices instead of failing.
//
// Allocator (see cuda_runtime.h for the contract): per device, a map from bucket size to the free
// blocks of that size, and a map from live pointers to their bucket. Reuse is safe without events
// because every use of device memory by gta is queued on the device's one stream: the kernels that
// read or write a block before the host frees it run before any kernel queued after the block is
// handed out again. The per-device state is created on first use and never destroyed (tensors
// freed during static destruction still find it; the driver reclaims everything at exit).
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/cuda_context.h"
#include "core/cuda_graph.h"
#include "core/cuda_runtime.h"
#include "core/error.h"

namespace gta::cuda {

// ---- errors ------------------------------------------------------------------------------------

void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so later calls are not blamed for it
  fail("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(e), cudaGetErrorString(e), expr, file, line);
}

void throw_cublas_error(cublasStatus_t s, const char* expr, const char* file, int line) {
  fail("cuBLAS error {} ({}) in {} at {}:{}", cublasLtGetStatusName(s), cublasLtGetStatusString(s), expr, file,
       line);
}

// ---- devices -------------------------------------------------------------------------------------

int device_count() {
  static const int n = [] {
    int k = 0;
    if (cudaGetDeviceCount(&k) != cudaSuccess) {
      cudaGetLastError();  // clear the "no driver" / "no device" error
      return 0;
    }
    return k;
  }();
  return n;
}

int current_device() {
  int d = 0;
  GTA_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

DeviceGuard::DeviceGuard(int device) {
  int cur = current_device();
  if (cur != device) {
    GTA_CUDA_CHECK(cudaSetDevice(device));
    prev_ = cur;
  }
}

DeviceGuard::~DeviceGuard() {
  if (prev_ >= 0) cudaSetDevice(prev_);
}

namespace {

constexpr int kMaxDevices = 64;
constexpr size_t kCublasLtWorkspace = size_t(32) << 20;  // what cuBLAS recommends on Hopper

struct DeviceState {
  cudaStream_t stream = nullptr;
  cudaStream_t side = nullptr;                     // see side_stream()
  cudaEvent_t fork = nullptr, join = nullptr;      // fork_side(), join_side()
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  int sms = 0;
};

std::array<std::atomic<DeviceState*>, kMaxDevices> g_states{};
std::mutex g_state_mutex;

DeviceState& state(int device) {
  GTA_CHECK(device >= 0 && device < device_count() && device < kMaxDevices, "CUDA device {} does not exist ({} visible)",
            device, device_count());
  DeviceState* s = g_states[device].load(std::memory_order_acquire);
  if (s) return *s;
  std::lock_guard<std::mutex> lock(g_state_mutex);
  s = g_states[device].load(std::memory_order_relaxed);
  if (s) return *s;
  DeviceGuard guard(device);
  auto* st = new DeviceState();  // never freed: see the file comment
  // A blocking stream (not cudaStreamNonBlocking): it stays ordered with the legacy default stream.
  GTA_CUDA_CHECK(cudaStreamCreate(&st->stream));
  int least = 0, greatest = 0;  // numerically: greatest <= least
  GTA_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  GTA_CUDA_CHECK(cudaStreamCreateWithPriority(&st->side, cudaStreamDefault, greatest));
  GTA_CUDA_CHECK(cudaEventCreateWithFlags(&st->fork, cudaEventDisableTiming));
  GTA_CUDA_CHECK(cudaEventCreateWithFlags(&st->join, cudaEventDisableTiming));
  GTA_CUBLAS_CHECK(cublasLtCreate(&st->lt));
  GTA_CUDA_CHECK(cudaMalloc(&st->workspace, kCublasLtWorkspace));
  GTA_CUDA_CHECK(cudaDeviceGetAttribute(&st->sms, cudaDevAttrMultiProcessorCount, device));
  g_states[device].store(st, std::memory_order_release);
  return *st;
}

}  // namespace

cudaStream_t stream(int device) { return state(device).stream; }
cudaStream_t current_stream() { return state(current_device()).stream; }
cudaStream_t side_stream() { return state(current_device()).side; }
void fork_side() {
  DeviceState& s = state(current_device());
  GTA_CUDA_CHECK(cudaEventRecord(s.fork, s.stream));
  GTA_CUDA_CHECK(cudaStreamWaitEvent(s.side, s.fork, 0));
}
void join_side() {
  DeviceState& s = state(current_device());
  GTA_CUDA_CHECK(cudaEventRecord(s.join, s.side));
  GTA_CUDA_CHECK(cudaStreamWaitEvent(s.stream, s.join, 0));
}
cublasLtHandle_t cublaslt_handle() { return state(current_device()).lt; }
void* cublaslt_workspace() { return state(current_device()).workspace; }
size_t cublaslt_workspace_bytes() { return kCublasLtWorkspace; }
int sm_count() { return state(current_device()).sms; }

void synchronize(int device) {
  if (device < 0) device = current_device();
  GTA_CUDA_CHECK(cudaStreamSynchronize(stream(device)));
}

// ---- caching allocator ---------------------------------------------------------------------------

size_t round_allocation_size(size_t n) {
  constexpr size_t kSmallStep = 512, kSmallLimit = size_t(1) << 20;
  if (n <= kSmallLimit) return n == 0 ? kSmallStep : (n + kSmallStep - 1) / kSmallStep * kSmallStep;
  const int lg = 63 - __builtin_clzll(static_cast<unsigned long long>(n));  // floor(log2 n) >= 20
  const size_t step = size_t(1) << (lg - 3);                                 // 8 buckets per octave
  return (n + step - 1) / step * step;
}

namespace {

struct Allocator {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // bucket size -> cached blocks
  std::unordered_map<void*, size_t> live;                       // pointer -> bucket size
  size_t cached_bytes = 0;
  MemoryStats stats;
  // CUDA-graph pools (cuda_graph.h): blocks allocated while a capture is open belong to its
  // graph's pool; freed, they are parked there (still counted as allocated) until the pool is
  // released, then cached as usual.
  int open_pool = -1, next_pool = 0;
  std::unordered_map<void*, int> pool_of;                                     // live pool blocks
  std::unordered_map<int, std::vector<std::pair<void*, size_t>>> parked;     // pool -> freed blocks

  void note_peaks() {
    stats.peak_allocated_bytes = std::max(stats.peak_allocated_bytes, stats.allocated_bytes);
    stats.peak_reserved_bytes = std::max(stats.peak_reserved_bytes, stats.reserved_bytes);
  }

  // Frees every cached block (the caller holds mu and has made the device current).
  void release_cached() {
    if (cached_bytes == 0) return;
    // cudaFree waits for the device, so blocks still in use by queued kernels are safe to free.
    for (auto& [size, blocks] : free_blocks) {
      for (void* p : blocks) {
        cudaFree(p);
        ++stats.driver_frees;
        stats.reserved_bytes -= size;
      }
      blocks.clear();
    }
    free_blocks.clear();
    cached_bytes = 0;
  }
};

std::array<std::atomic<Allocator*>, kMaxDevices> g_allocators{};

Allocator& allocator(int device) {
  GTA_CHECK(device >= 0 && device < kMaxDevices, "CUDA device {} out of range", device);
  Allocator* a = g_allocators[device].load(std::memory_order_acquire);
  if (a) return *a;
  std::lock_guard<std::mutex> lock(g_state_mutex);
  a = g_allocators[device].load(std::memory_order_relaxed);
  if (!a) {
    a = new Allocator();  // never freed: see the file comment
    g_allocators[device].store(a, std::memory_order_release);
  }
  return *a;
}

}  // namespace

void* device_alloc(size_t nbytes, int device) {
  state(device);  // the stream exists before any block does
  Allocator& A = allocator(device);
  const size_t size = round_allocation_size(nbytes);
  std::lock_guard<std::mutex> lock(A.mu);
  ++A.stats.alloc_calls;
  void* p = nullptr;
  auto it = A.free_blocks.find(size);
  if (it != A.free_blocks.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    A.cached_bytes -= size;
    ++A.stats.cache_hits;
  } else {
    DeviceGuard guard(device);
    cudaError_t e = cudaMalloc(&p, size);
    ++A.stats.driver_allocs;
    if (e == cudaErrorMemoryAllocation && A.cached_bytes > 0) {
      cudaGetLastError();
      A.release_cached();
      e = cudaMalloc(&p, size);
      ++A.stats.driver_allocs;
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail("CUDA out of memory on cuda:{} allocating {} bytes ({} rounded): {} in live tensors, {} free of {} ({})",
           device, nbytes, size, A.stats.allocated_bytes, free_b, total_b, cudaGetErrorString(e));
    }
    A.stats.reserved_bytes += size;
  }
  A.live.emplace(p, size);
  if (A.open_pool >= 0) A.pool_of.emplace(p, A.open_pool);
  A.stats.allocated_bytes += size;
  A.note_peaks();
  return p;
}

void device_free(void* p, int device) {
  if (!p) return;
  Allocator& A = allocator(device);
  std::lock_guard<std::mutex> lock(A.mu);
  auto it = A.live.find(p);
  if (it == A.live.end()) {  // not ours: hand it straight back to the driver
    DeviceGuard guard(device);
    cudaFree(p);
    return;
  }
  const size_t size = it->second;
  A.live.erase(it);
  if (auto pool = A.pool_of.find(p); pool != A.pool_of.end()) {  // a graph's block: parked until its release
    A.parked[pool->second].emplace_back(p, size);
    A.pool_of.erase(pool);
    return;
  }
  A.stats.allocated_bytes -= size;
  A.free_blocks[size].push_back(p);
  A.cached_bytes += size;
}

// ---- CUDA graphs (cuda_graph.h) ---------------------------------------------------------------

StreamGraph::StreamGraph(int device) : device_(device) {}

StreamGraph::~StreamGraph() {
  DeviceGuard guard(device_);
  if (capturing_) abort_capture();
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  if (pool_ < 0) return;
  cudaStreamSynchronize(stream(device_));  // a replay may still be writing the parked blocks
  Allocator& A = allocator(device_);
  std::lock_guard<std::mutex> lock(A.mu);
  for (auto& [p, size] : A.parked[pool_]) {
    A.stats.allocated_bytes -= size;
    A.free_blocks[size].push_back(p);
    A.cached_bytes += size;
  }
  A.parked.erase(pool_);
  for (auto it = A.pool_of.begin(); it != A.pool_of.end();)  // live blocks now belong to their tensors alone
    it = it->second == pool_ ? A.pool_of.erase(it) : std::next(it);
}

void StreamGraph::begin_capture() {
  GTA_CHECK(!capturing_ && !exec_ && pool_ < 0, "StreamGraph: one capture per graph");
  DeviceGuard guard(device_);
  Allocator& A = allocator(device_);
  {
    std::lock_guard<std::mutex> lock(A.mu);
    GTA_CHECK(A.open_pool < 0, "StreamGraph: another capture is open on cuda:{}", device_);
    pool_ = A.open_pool = A.next_pool++;
  }
  GTA_CUDA_CHECK(cudaStreamBeginCapture(stream(device_), cudaStreamCaptureModeRelaxed));
  capturing_ = true;
}

void StreamGraph::end_capture() {
  GTA_CHECK(capturing_, "StreamGraph: end_capture without begin_capture");
  DeviceGuard guard(device_);
  capturing_ = false;
  {
    Allocator& A = allocator(device_);
    std::lock_guard<std::mutex> lock(A.mu);
    A.open_pool = -1;
  }
  cudaGraph_t g = nullptr;
  GTA_CUDA_CHECK(cudaStreamEndCapture(stream(device_), &g));
  graph_ = g;
  cudaGraphExec_t e = nullptr;
  GTA_CUDA_CHECK(cudaGraphInstantiate(&e, g, 0));
  exec_ = e;
}

void StreamGraph::abort_capture() {
  if (!capturing_) return;
  DeviceGuard guard(device_);
  capturing_ = false;
  {
    Allocator& A = allocator(device_);
    std::lock_guard<std::mutex> lock(A.mu);
    A.open_pool = -1;
  }
  cudaGraph_t g = nullptr;
  cudaStreamEndCapture(stream(device_), &g);  // fails when the capture was invalidated; either way it is over
  if (g) cudaGraphDestroy(g);
  cudaGetLastError();
}

void StreamGraph::replay() {
  GTA_CHECK(exec_, "StreamGraph: replay before a capture");
  DeviceGuard guard(device_);
  GTA_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream(device_)));
}

void empty_cache() {
  for (int d = 0; d < kMaxDevices; ++d) {
    Allocator* a = g_allocators[d].load(std::memory_order_acquire);
    if (!a) continue;
    DeviceGuard guard(d);
    std::lock_guard<std::mutex> lock(a->mu);
    a->release_cached();
  }
}

MemoryStats memory_stats(int device) {
  Allocator& A = allocator(device);
  std::lock_guard<std::mutex> lock(A.mu);
  return A.stats;
}

void reset_peak_memory_stats(int device) {
  Allocator& A = allocator(device);
  std::lock_guard<std::mutex> lock(A.mu);
  A.stats.peak_allocated_bytes = A.stats.allocated_bytes;
  A.stats.peak_reserved_bytes = A.stats.reserved_bytes;
}

// ---- copies --------------------------------------------------------------------------------------

namespace {
int device_of(const void* p) {
  cudaPointerAttributes attr{};
  GTA_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
  GTA_CHECK(attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged,
            "copy: pointer {} is not device memory", p);
  return attr.device;
}
}  // namespace

void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t n) {
  if (n == 0) return;
  if (!dst_on_device && !src_on_device) {
    std::memcpy(dst, src, n);
    return;
  }
  if (dst_on_device && src_on_device) {
    const int dd = device_of(dst), sd = device_of(src);
    DeviceGuard guard(dd);
    if (dd != sd) synchronize(sd);  // the source's producers ran on the other device's stream
    GTA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, stream(dd)));
    if (dd != sd) synchronize(dd);  // and the source may be freed on its own stream right after
    return;
  }
  if (dst_on_device) {  // host -> device: pageable sources are staged before the call returns
    const int dd = device_of(dst);
    DeviceGuard guard(dd);
    GTA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, stream(dd)));
    return;
  }
  const int sd = device_of(src);  // device -> host: wait, the caller reads the bytes next
  DeviceGuard guard(sd);
  GTA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, stream(sd)));
  GTA_CUDA_CHECK(cudaStreamSynchronize(stream(sd)));
}

void memset_zero(void* p, size_t n, int device) {
  if (n == 0) return;
  DeviceGuard guard(device);
  GTA_CUDA_CHECK(cudaMemsetAsync(p, 0, n, stream(device)));
}

// ---- timing --------------------------------------------------------------------------------------

StreamTimer::StreamTimer(int device) : device_(device < 0 ? current_device() : device) {
  DeviceGuard guard(device_);
  cudaEvent_t a, b;
  GTA_CUDA_CHECK(cudaEventCreate(&a));
  GTA_CUDA_CHECK(cudaEventCreate(&b));
  start_ = a;
  stop_ = b;
}

StreamTimer::~StreamTimer() {
  DeviceGuard guard(device_);
  cudaEventDestroy(static_cast<cudaEvent_t>(start_));
  cudaEventDestroy(static_cast<cudaEvent_t>(stop_));
}

void StreamTimer::start() {
  DeviceGuard guard(device_);
  GTA_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(start_), stream(device_)));
}

void StreamTimer::stop() {
  DeviceGuard guard(device_);
  GTA_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(stop_), stream(device_)));
}

float StreamTimer::elapsed_ms() const {
  DeviceGuard guard(device_);
  GTA_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)));
  float ms = 0;
  GTA_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_), static_cast<cudaEvent_t>(stop_)));
  return ms;
}

// ---- options -------------------------------------------------------------------------------------

namespace {
std::atomic<bool> g_allow_tf32{false};
}
void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

}  // namespace gta::cuda
