// make_communicator: picks the implementation for this process (see communicator.h).
#include "distributed/communicator.h"
#include "distributed/local_communicator.h"
#include "distributed/mpi_communicator.h"
#include "distributed/nccl_communicator.h"

namespace gta::dist {

std::unique_ptr<Communicator> make_communicator(const LaunchEnv& env, double timeout_s, Device compute_device) {
  if (env.world_size == 1) return std::make_unique<LocalCommunicator>();
  if (compute_device.is_cuda()) return make_nccl_communicator(env, timeout_s, compute_device);
  return std::make_unique<MpiCommunicator>(env, timeout_s);
}

}  // namespace gta::dist
