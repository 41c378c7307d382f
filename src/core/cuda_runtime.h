// The few CUDA runtime services the core needs (allocation, copies, device count), declared
// without CUDA headers so CPU-only builds compile the same callers. Implemented in
// cuda_runtime.cu when the build has CUDA, and in cuda_runtime_stub.cpp otherwise, where every
// call but device_count() reports that the build has no CUDA backend.
#pragma once
#include <cstddef>

namespace gta::cuda {

int device_count();  // 0 without a GPU or without the CUDA backend
void* device_alloc(size_t nbytes, int device);
void device_free(void* p, int device);
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t n);
void memset_zero(void* p, size_t n, int device);

}  // namespace gta::cuda
