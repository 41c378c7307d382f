#include <cstdlib>
#include <string>

#include "core/error.h"
#include "distributed/communicator.h"

namespace gta::dist {

namespace {

// The integer value of variable `name`, or `fallback` when unset.
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  try {
    size_t used = 0;
    int x = std::stoi(v, &used);
    if (used == std::string(v).size() && x >= 0) return x;
  } catch (const std::exception&) {
  }
  fail("environment variable {}='{}' is not a non-negative integer", name, v);
}

}  // namespace

LaunchEnv detect_launch_env() {
  LaunchEnv e;
  struct Scheme {
    const char *launcher, *rank, *size, *local;
  };
  // Open MPI's mpirun, MPICH/Intel MPI's Hydra (PMI), Slurm's srun.
  for (const Scheme& s : {Scheme{"open-mpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
                          Scheme{"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
                          Scheme{"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}}) {
    if (std::getenv(s.size) == nullptr) continue;
    e.launcher = s.launcher;
    e.world_size = env_int(s.size, 1);
    e.rank = env_int(s.rank, 0);
    e.local_rank = env_int(s.local, 0);
    GTA_CHECK(e.world_size >= 1 && e.rank < e.world_size, "{}: rank {} outside a world of {}", s.launcher, e.rank,
              e.world_size);
    break;
  }
  return e;
}

void set_rank_env_defaults(const LaunchEnv& env) {
  if (env.world_size <= 1) return;
  // One hardware work queue per GPU instead of CUDA's default 8, so kernels of all streams start
  // in the order the host issued them. A bucket's all-reduce (NCCL, on its own stream) then takes
  // its SMs as soon as its gradients are ready, and backward's later kernels share the rest; with
  // 8 queues they often took every SM first and the all-reduce waited for them, stretching both.
  // Megatron-LM sets the same. On 4 H100s (GTA-S, B8 T2048 per GPU) it cut backward from 27.3-27.9
  // to 26.4-26.8 ms and raised 4-GPU throughput from 3.67-3.72x to 3.80x one GPU
  // (bench/results/scaling_h100.md). Read when the CUDA context is created: set before that.
  setenv("CUDA_DEVICE_MAX_CONNECTIONS", "1", 0);
}

}  // namespace gta::dist
