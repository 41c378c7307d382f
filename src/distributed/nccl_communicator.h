// Data parallelism on GPUs: collectives on CUDA tensors over NCCL, one process per GPU.
//
// Bootstrap and everything that is not a GPU tensor go through MPI (an MpiCommunicator inside):
// rank and world size, the broadcast of rank 0's ncclUniqueId, scalar sum/max, barrier, abort,
// and collectives on CPU tensors. Rank r computes on cuda:<local rank of r>.
//
// Streams: gta queues all device work on one compute stream per device (core/cuda_context.h).
// An all-reduce records an event on that stream, makes a dedicated communication stream wait on
// it, runs ncclAllReduce (sum, in place) there and records a done event, so it overlaps with the
// compute work queued after it (the rest of backward). Work::wait() makes the compute stream wait
// on the done event (later kernels see the reduced values; the buffer may then be freed and
// reused) and, on the host, polls the event and NCCL's asynchronous error state until
// dist.timeout_s: past the deadline, or on an NCCL error, the communicator is aborted
// (ncclCommAbort) and the job ended through MPI with a message naming the collective.
//
// Compiled only in CUDA builds; without CUDA, make_nccl_communicator reports that clearly.
#pragma once
#include <memory>

#include "distributed/communicator.h"

namespace gta::dist {

// The NCCL communicator for this rank (env.world_size > 1). `compute_device` must be
// cuda:<env.local_rank>, a visible device.
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchEnv& env, double timeout_s, Device compute_device);

}  // namespace gta::dist
