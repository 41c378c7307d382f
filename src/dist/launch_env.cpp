#include <cstdlib>
#include <string>

#include "core/error.h"
#include "dist/communicator.h"

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

}  // namespace gta::dist
