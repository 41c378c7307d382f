// CPU-only builds: the launchers that src/ calls without #ifdef GTA_WITH_CUDA (the optimizer's,
// kernels/adamw.h). Their callers take the GPU path only for tensors on a GPU, which a build
// without CUDA cannot allocate, so each reports the missing backend as core/cuda_runtime_stub.cpp
// does.
#include "core/error.h"
#include "kernels/adamw.h"

namespace gta::kernels {

namespace {
[[noreturn]] void no_cuda() {
  fail("this build of gta has no CUDA backend (rebuild with nvcc present and -DGTA_CUDA=ON)");
}
}  // namespace

void adamw_step(const std::vector<AdamWTensor>&, const AdamWCoeffs&) { no_cuda(); }
double grad_sum_squares(const std::vector<GradRef>&) { no_cuda(); }
void scale_grads(const std::vector<GradRef>&, double) { no_cuda(); }

}  // namespace gta::kernels
