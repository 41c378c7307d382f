// Per-device CUDA state for kernel launchers (CUDA-only: include it from .cu files alone).
//
//   GTA_CUDA_CHECK(expr)     throws gta::Error naming the call, file and line when expr fails
//   GTA_CUBLAS_CHECK(expr)   the same for cuBLAS / cuBLASLt status codes
//   GTA_CUDA_CHECK_LAUNCH()  checks the last launch (cudaGetLastError) right after a <<<...>>>
//   current_stream()         the stream every gta kernel, copy and GEMM on the current device
//                            runs on (one per device, created on first use; it synchronizes with
//                            the legacy default stream, so a stray launch on stream 0 stays
//                            ordered with gta's work). The caching allocator relies on this one
//                            stream to reuse freed blocks without events.
//   side_stream()            a second stream of the device, of the highest priority, for a kernel
//                            that runs beside current_stream's between fork_side() (the side
//                            stream waits for all work enqueued on current_stream so far) and
//                            join_side() (current_stream waits for all enqueued on the side
//                            stream): to the allocator and every later op it is as if the work
//                            ran on current_stream. Its priority lets the block scheduler place
//                            its CTAs first while both streams have CTAs waiting.
//   cublaslt_handle()        the device's cuBLASLt handle, with a fixed workspace
//                            (cublaslt_workspace()) so algorithm choices stay the same run to run
//   sm_count()               multiprocessors of the current device, for sizing grids
//   set_dynamic_smem()       a kernel's dynamic shared memory past 48 KB, checked against the device
//   Event                    a RAII cudaEvent_t for timing: record(), then elapsed_ms(start)
//
// Everything is per device and refers to the *current* device (cudaGetDevice); op entry points
// make the tensor's device current with gta::cuda::DeviceGuard (cuda_runtime.h).
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "core/cuda_runtime.h"
#include "core/error.h"

namespace gta::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t s, const char* expr, const char* file, int line);

#define GTA_CUDA_CHECK(expr)                                                       \
  do {                                                                             \
    cudaError_t gta_err_ = (expr);                                                 \
    if (gta_err_ != cudaSuccess) ::gta::cuda::throw_cuda_error(gta_err_, #expr, __FILE__, __LINE__); \
  } while (0)

#define GTA_CUBLAS_CHECK(expr)                                                     \
  do {                                                                             \
    cublasStatus_t gta_st_ = (expr);                                               \
    if (gta_st_ != CUBLAS_STATUS_SUCCESS) ::gta::cuda::throw_cublas_error(gta_st_, #expr, __FILE__, __LINE__); \
  } while (0)

#define GTA_CUDA_CHECK_LAUNCH() GTA_CUDA_CHECK(cudaGetLastError())

cudaStream_t stream(int device);
cudaStream_t current_stream();
cudaStream_t side_stream();
void fork_side();
void join_side();
cublasLtHandle_t cublaslt_handle();
void* cublaslt_workspace();
size_t cublaslt_workspace_bytes();
int sm_count();

// Lets `kernel` use `bytes` of dynamic shared memory per block (past the 48 KB default); more than
// the current device offers is an error naming `what` (e.g. head widths too large for a tiling).
template <typename K>
void set_dynamic_smem(K kernel, size_t bytes, const char* what) {
  int dev = 0, optin = 0;
  GTA_CUDA_CHECK(cudaGetDevice(&dev));
  GTA_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  GTA_CHECK(bytes <= static_cast<size_t>(optin), "{}: {} bytes of shared memory per block needed, the device has {}",
            what, bytes, optin);
  GTA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

// Blocks for a grid-stride loop over n items: as many as the items need, at most blocks_per_sm
// per multiprocessor (16 blocks of 256 threads = two full waves on Hopper).
inline unsigned grid_for(long long n, int threads, int blocks_per_sm = 16) {
  long long need = (n + threads - 1) / threads;
  long long cap = static_cast<long long>(sm_count()) * blocks_per_sm;
  long long g = need < cap ? need : cap;
  return static_cast<unsigned>(g < 1 ? 1 : g);
}

// Scratch device memory from the caching allocator for the kernels of one launcher. Freeing is
// stream-ordered: releasing it right after queuing the kernels that use it is safe.
struct DeviceTemp {
  void* p = nullptr;
  int device;
  explicit DeviceTemp(size_t bytes) : device(current_device()) {
    if (bytes) p = device_alloc(bytes, device);
  }
  ~DeviceTemp() { device_free(p, device); }
  DeviceTemp(const DeviceTemp&) = delete;
  DeviceTemp& operator=(const DeviceTemp&) = delete;
};

// A CUDA event for timing work on gta's stream:
//   Event start, stop; start.record(); ...launches...; stop.record(); float ms = stop.elapsed_ms(start);
class Event {
 public:
  Event() { GTA_CUDA_CHECK(cudaEventCreate(&ev_)); }
  ~Event() {
    if (ev_) cudaEventDestroy(ev_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t s = nullptr) { GTA_CUDA_CHECK(cudaEventRecord(ev_, s ? s : current_stream())); }
  void synchronize() const { GTA_CUDA_CHECK(cudaEventSynchronize(ev_)); }
  // Milliseconds from `start` to this event; waits for this event first.
  float elapsed_ms(const Event& start) const {
    synchronize();
    float ms = 0;
    GTA_CUDA_CHECK(cudaEventElapsedTime(&ms, start.ev_, ev_));
    return ms;
  }
  cudaEvent_t get() const { return ev_; }

 private:
  cudaEvent_t ev_ = nullptr;
};

}  // namespace gta::cuda
