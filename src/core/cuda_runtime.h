// The CUDA runtime services the rest of gta needs, declared without CUDA headers so CPU-only
// builds and plain .cpp files compile the same callers. Implemented in cuda_runtime.cu when the
// build has CUDA, and in cuda_runtime_stub.cpp otherwise, where every call but device_count()
// (and the harmless queries) reports that the build has no CUDA backend.
//
// Memory: device memory comes from a caching allocator. Requests are rounded up to a size
// bucket (512 B steps up to 1 MiB, then 8 steps per power of two, so at most 12.5% slack); a
// freed block goes back to its bucket's free list and the next request of that bucket reuses it
// without a cudaMalloc. All device work of gta runs on one stream per device (cuda_context.h), so
// a block freed by the host can be handed out again at once: any later use is queued behind every
// earlier use on the same stream. When cudaMalloc fails the cache is emptied and the request
// retried once. empty_cache() returns the cached blocks to the driver.
//
// Copies: host<->device and device<->device copies are cudaMemcpyAsync on the device's stream;
// a copy that writes host memory synchronizes the stream before returning, so the caller may read
// the bytes at once. Host->device copies from pageable memory are staged by the driver before the
// call returns, so the host buffer may be freed right after.
#pragma once
#include <cstddef>
#include <cstdint>

namespace gta::cuda {

int device_count();  // 0 without a GPU or without the CUDA backend

// ---- caching allocator ----
void* device_alloc(size_t nbytes, int device);
void device_free(void* p, int device);
// Returns every cached (free) block of every device to the driver. Live blocks are untouched.
void empty_cache();

struct MemoryStats {
  size_t allocated_bytes = 0;       // bytes in live blocks (bucket-rounded sizes)
  size_t peak_allocated_bytes = 0;  // high-water mark of allocated_bytes since the last reset
  size_t reserved_bytes = 0;        // bytes held from the driver: live + cached blocks
  size_t peak_reserved_bytes = 0;   // high-water mark of reserved_bytes since the last reset
  uint64_t alloc_calls = 0;         // device_alloc calls
  uint64_t cache_hits = 0;          // ... of which were served from the cache
  uint64_t driver_allocs = 0;       // cudaMalloc calls made (including the retried ones)
  uint64_t driver_frees = 0;        // cudaFree calls made (empty_cache, out-of-memory retries)
};
MemoryStats memory_stats(int device);
// Resets the peaks to the current values (the counters keep counting).
void reset_peak_memory_stats(int device);
// The bucket a request of nbytes is rounded up to (exposed for tests and benchmarks).
size_t round_allocation_size(size_t nbytes);

// ---- copies and fills (on the device's stream) ----
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t n);
void memset_zero(void* p, size_t n, int device);
// Waits for all work queued on the device's stream (device < 0: the current device).
void synchronize(int device = -1);

// ---- device selection ----
int current_device();
// Makes `device` current for the guard's lifetime (a no-op when it already is).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

// ---- timing (for plain C++ callers; .cu files can use cuda_context.h's Event) ----
// Events recorded on the device's stream: start(); ...work...; stop(); elapsed_ms() waits for
// the stop event and returns the milliseconds between the two.
class StreamTimer {
 public:
  explicit StreamTimer(int device = -1);  // -1: the current device
  ~StreamTimer();
  StreamTimer(const StreamTimer&) = delete;
  StreamTimer& operator=(const StreamTimer&) = delete;
  void start();
  void stop();
  float elapsed_ms() const;

 private:
  int device_;
  void* start_ = nullptr;  // cudaEvent_t
  void* stop_ = nullptr;
};

// ---- matrix-product options ----
// f32 GEMMs use exact fp32 arithmetic unless TF32 is allowed (off by default: the CPU reference
// comparisons need it off; TF32 keeps 10 mantissa bits, errors near 3e-4).
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace gta::cuda
