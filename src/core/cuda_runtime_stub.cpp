// CPU-only builds: the CUDA services report that the backend is absent.
#ifndef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "core/error.h"

namespace gta::cuda {

int device_count() { return 0; }
[[noreturn]] static void no_cuda() {
  fail("this build of gta has no CUDA backend (rebuild with nvcc present and -DGTA_CUDA=ON)");
}
void* device_alloc(size_t, int) { no_cuda(); }
void device_free(void*, int) {}
void copy(void*, bool, const void*, bool, size_t) { no_cuda(); }
void memset_zero(void*, size_t, int) { no_cuda(); }

}  // namespace gta::cuda
#endif
