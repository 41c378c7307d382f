// CUDA builds: device memory and copies through the CUDA runtime. A machine without a GPU
// (or without a driver) reports zero devices instead of failing.
#include <cuda_runtime.h>

#include "core/cuda_runtime.h"
#include "core/error.h"

namespace gta::cuda {

static void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("CUDA error in {}: {}", what, cudaGetErrorString(e));
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

void* device_alloc(size_t nbytes, int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  void* p = nullptr;
  check(cudaMalloc(&p, nbytes), "cudaMalloc");
  return p;
}

void device_free(void* p, int device) {
  cudaSetDevice(device);
  cudaFree(p);
}

void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t n) {
  cudaMemcpyKind kind = dst_on_device ? (src_on_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                      : (src_on_device ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  check(cudaMemcpy(dst, src, n, kind), "cudaMemcpy");
}

void memset_zero(void* p, size_t n, int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cudaMemset(p, 0, n), "cudaMemset");
}

}  // namespace gta::cuda
