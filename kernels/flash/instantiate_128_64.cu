// The mma.sync flash kernels for (d_qk, d_v) = (128, 64), forward and backward (launch.h).
#include "kernels/flash/backward.cuh"
#include "kernels/flash/forward.cuh"

namespace gta::kernels::flash {

GTA_FLASH_INSTANTIATE(128, 64)

}  // namespace gta::kernels::flash
