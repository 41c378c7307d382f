// The mma.sync flash kernels for (d_qk, d_v) = (128, 192), forward and backward (launch.h).
#include "kernels/flash/backward.cuh"
#include "kernels/flash/forward.cuh"

namespace gta::kernels::flash {

GTA_FLASH_INSTANTIATE(128, 192)

}  // namespace gta::kernels::flash
