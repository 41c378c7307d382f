// NcclCommunicator (see nccl_communicator.h). Host-only C++: it calls the CUDA runtime and NCCL
// APIs, no kernels of its own, so it is a .cpp compiled in CUDA builds only (GTA_WITH_CUDA).
#include "distributed/nccl_communicator.h"

#include "core/error.h"

#ifdef GTA_WITH_CUDA
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/cuda_context.h"
#include "core/cuda_runtime.h"
#include "distributed/mpi_communicator.h"
#endif

namespace gta::dist {

#ifdef GTA_WITH_CUDA

namespace {

// The launcher's variable that gave this process its local rank.
const char* local_rank_variable(const std::string& launcher) {
  if (launcher == "open-mpi") return "OMPI_COMM_WORLD_LOCAL_RANK";
  if (launcher == "pmi") return "MPI_LOCALRANKID";
  if (launcher == "slurm") return "SLURM_LOCALID";
  return "the launcher's local rank";
}

ncclDataType_t nccl_reduce_type(const Tensor& t) {
  switch (t.dtype()) {
    case DType::f32: return ncclFloat32;
    case DType::bf16: return ncclBfloat16;
    case DType::f64: return ncclFloat64;
    default: fail("NCCL all-reduce supports f32, bf16 and f64 tensors, not {}", t.str());
  }
}

class NcclCommunicator;

class NcclWork : public Work {
 public:
  NcclWork(NcclCommunicator* comm, std::vector<Tensor> ts, cudaEvent_t done, std::string what)
      : comm_(comm), tensors_(std::move(ts)), done_(done), what_(std::move(what)) {}
  ~NcclWork() override;
  void wait() override;

 private:
  NcclCommunicator* comm_;
  std::vector<Tensor> tensors_;  // keep the buffers alive while NCCL may still use them
  cudaEvent_t done_;
  std::string what_;
  bool waited_ = false;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const LaunchEnv& env, double timeout_s, Device compute_device)
      : mpi_(init_mpi(env, timeout_s)), timeout_s_(timeout_s) {
    const int visible = cuda::device_count();
    const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES");
    if (visible == 0)
      mpi_->abort(fmt::format("NCCL data parallel: rank {} sees no CUDA device (CUDA_VISIBLE_DEVICES={}); run on a "
                              "GPU machine or train on the CPU (MPI)",
                              env.rank, cvd ? cvd : "<unset>"));
    if (env.local_rank >= visible)
      mpi_->abort(fmt::format(
          "NCCL data parallel: rank {} has local rank {} ({}) but only {} CUDA device(s) are visible "
          "(CUDA_VISIBLE_DEVICES={}): start at most one rank per GPU on each node (mpirun -np N with N <= {})",
          env.rank, env.local_rank, local_rank_variable(env.launcher), visible, cvd ? cvd : "<unset>", visible));
    if (!compute_device.is_cuda() || compute_device.index != env.local_rank)
      mpi_->abort(fmt::format(
          "NCCL data parallel: rank {} (local rank {}, {}) computes on {}, but each rank must use the GPU of its "
          "local rank, cuda:{} (one process per GPU): pass the device as plain 'cuda'",
          env.rank, env.local_rank, local_rank_variable(env.launcher), compute_device.str(), env.local_rank));
    device_ = env.local_rank;
    // NVLink multicast (NVLink SHARP, "NVLS") stays off: on the shared multi-GPU hosts this
    // project runs on, a program that sets up NVLink multicast objects can put the host's GPUs out
    // of service for everyone, and NCCL would set them up in ncclCommInitRank on NVSwitch machines.
    // Data-parallel all-reduces of ~25 MB buckets gain little from it. overwrite=0 keeps a value
    // exported explicitly (bench/scaling_gpu.sh passes -x NCCL_NVLS_ENABLE=0 too). Set before the
    // first NCCL call of this process, which is when NCCL reads its environment.
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    // At most 16 CTAs (SMs) per NCCL kernel (NCCL took 24, one per channel, on 4 H100s): the
    // all-reduces overlap backward, whose kernels get the other SMs. With one hardware queue (see
    // set_rank_env_defaults) this gave 1.524M tokens/s on 4 H100s against 1.502M with NCCL's own
    // choice (bench/results/scaling_h100.md), though a 200 MB all-reduce alone takes 0.99 ms
    // instead of 0.90: what counts is how little it slows the kernels it runs beside.
    setenv("NCCL_MAX_CTAS", "16", 0);

    try {
      GTA_CUDA_CHECK(cudaSetDevice(device_));  // the process's default device from now on
      ncclUniqueId id{};
      if (rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
      mpi_->broadcast_bytes(&id, sizeof id, 0);
      check(ncclCommInitRank(&comm_, world_size(), id, rank()), "ncclCommInitRank");
      int lo = 0, hi = 0;  // a high-priority stream lets communication kernels start during backward
      GTA_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
      GTA_CUDA_CHECK(cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, hi));
      GTA_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    } catch (const std::exception& e) {
      mpi_->abort(fmt::format("NCCL set-up on cuda:{} failed: {}", device_, e.what()));
    }
  }

  ~NcclCommunicator() override {
    if (comm_ != nullptr) {
      cuda::DeviceGuard guard(device_);
      cudaStreamSynchronize(stream_);
      ncclCommFinalize(comm_);  // flushes what was issued (nothing, after the synchronize)
      ncclCommDestroy(comm_);
    }
    if (ready_ != nullptr) cudaEventDestroy(ready_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    // mpi_ (declared first) is destroyed last: MPI_Finalize after NCCL is gone.
  }

  // Makes this rank's GPU current before MPI starts (a CUDA-aware MPI then sets up on that GPU, not
  // on GPU 0 of every rank); a missing GPU is reported below, once MPI can end the whole job.
  static std::unique_ptr<MpiCommunicator> init_mpi(const LaunchEnv& env, double timeout_s) {
    if (env.local_rank < cuda::device_count()) cudaSetDevice(env.local_rank);
    return std::make_unique<MpiCommunicator>(env, timeout_s);
  }

  int rank() const override { return mpi_->rank(); }
  int world_size() const override { return mpi_->world_size(); }
  int local_rank() const override { return mpi_->local_rank(); }
  std::string name() const override { return "nccl"; }

  std::unique_ptr<Work> all_reduce_async(const Tensor& t) override {
    if (t.device().is_cpu()) return mpi_->all_reduce_async(t);
    check_tensor("all-reduce", t);
    const ncclDataType_t type = nccl_reduce_type(t);
    return enqueue({t}, "all-reduce of " + t.str(), [&] {
      return ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), type, ncclSum, comm_, stream_);
    });
  }

  // One NCCL group of in-place all-reduces with ncclAvg: NCCL aggregates the group's operations
  // into shared launches and divides by the world size itself, so gradient buckets need no
  // flattening copy in and no averaging copy out (each copy a pass over every gradient byte on
  // the compute stream). Measured on 4 H100s (bench/results/scaling_h100.md) as fast as one
  // flattened all-reduce per bucket.
  // Non-contiguous tensors take the flattening default.
  std::unique_ptr<Work> all_reduce_mean_async(const std::vector<Tensor>& ts) override {
    if (ts.empty() || ts.front().device().is_cpu() ||
        !std::all_of(ts.begin(), ts.end(), [](const Tensor& t) { return t.is_contiguous(); }))
      return Communicator::all_reduce_mean_async(ts);
    int64_t bytes = 0;
    for (const Tensor& t : ts) {
      check_tensor("all-reduce", t);
      nccl_reduce_type(t);  // a clear error for an unsupported dtype before the group starts
      bytes += static_cast<int64_t>(t.nbytes());
    }
    return enqueue(ts, fmt::format("averaging all-reduce of {} tensors ({} bytes)", ts.size(), bytes), [&] {
      ncclResult_t r = ncclGroupStart();
      for (const Tensor& t : ts)
        if (r == ncclSuccess)
          r = ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), nccl_reduce_type(t), ncclAvg,
                            comm_, stream_);
      const ncclResult_t end = ncclGroupEnd();  // always closes the group, even after a failed call
      return r != ncclSuccess ? r : end;
    });
  }

  double sum(double v) override { return mpi_->sum(v); }
  double max(double v) override { return mpi_->max(v); }

  void broadcast(const Tensor& t, int root) override {
    if (t.device().is_cpu()) return mpi_->broadcast(t, root);
    check_tensor("broadcast", t);
    GTA_CHECK(root >= 0 && root < world_size(), "broadcast from rank {} in a world of {}", root, world_size());
    enqueue({t}, fmt::format("broadcast of {} from rank {}", t.str(), root), [&] {
      return ncclBroadcast(t.raw_data(), t.raw_data(), t.nbytes(), ncclUint8, root, comm_, stream_);
    })->wait();
  }

  // Both on the communication stream behind the compute stream's work so far; the compute stream
  // waits for them (and the host, with the timeout, as for broadcast).
  void reduce_scatter_mean(const Tensor& in, const Tensor& out) override {
    if (in.device().is_cpu()) return mpi_->reduce_scatter_mean(in, out);
    check_scatter_shapes("NCCL reduce-scatter", in, out, world_size());
    check_tensor("reduce-scatter", in);
    const ncclDataType_t type = nccl_reduce_type(in);
    enqueue({in, out}, "reduce-scatter of " + in.str(), [&] {
      return ncclReduceScatter(in.raw_data(), out.raw_data(), static_cast<size_t>(out.numel()), type, ncclAvg, comm_,
                               stream_);
    })->wait();
  }

  void all_gather(const Tensor& in, const Tensor& out) override {
    if (in.device().is_cpu()) return mpi_->all_gather(in, out);
    check_scatter_shapes("NCCL all-gather", out, in, world_size());
    check_tensor("all-gather", in);
    enqueue({in, out}, "all-gather of " + in.str(), [&] {
      return ncclAllGather(in.raw_data(), out.raw_data(), in.nbytes(), ncclUint8, comm_, stream_);
    })->wait();
  }

  void barrier() override { mpi_->barrier(); }
  void barrier_within(double timeout_s, const std::string& what) override { mpi_->barrier_within(timeout_s, what); }

  [[noreturn]] void abort(const std::string& message) override {
    mpi_->abort(message);
    std::abort();  // not reached (a virtual call hides the callee's [[noreturn]] from the compiler)
  }

  // Host side of Work::wait(): polls `done` until the deadline (see the header).
  void wait_done(cudaEvent_t done, const std::string& what) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::duration<double>(timeout_s_);
    for (int spins = 0;; ++spins) {
      const cudaError_t e = cudaEventQuery(done);
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady) {
        cudaGetLastError();
        fail_comm(fmt::format("{} failed on cuda:{}: CUDA error {} ({})", what, device_, cudaGetErrorName(e),
                              cudaGetErrorString(e)));
      }
      ncclResult_t async = ncclSuccess;
      if (comm_ != nullptr && ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess &&
          async != ncclInProgress)
        fail_comm(fmt::format("{} failed on cuda:{}: NCCL error {} ({})", what, device_, ncclGetErrorString(async),
                              ncclGetLastError(comm_)));
      if (std::chrono::steady_clock::now() > deadline)
        fail_comm(fmt::format("{} did not complete within {} s: another rank crashed or stalled (dist.timeout_s)",
                              what, timeout_s_));
      if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  int device() const { return device_; }

 private:
  void check(ncclResult_t r, const char* call) {
    if (r == ncclSuccess) return;
    const char* detail = comm_ != nullptr ? ncclGetLastError(comm_) : ncclGetLastError(nullptr);
    fail("{} on cuda:{} (rank {} of {}): NCCL error {} ({})", call, device_, rank(), world_size(),
         ncclGetErrorString(r), detail != nullptr ? detail : "");
  }

  void check_tensor(const char* what, const Tensor& t) const {
    GTA_CHECK(t.device() == Device::cuda(device_), "NCCL {}: {} is not on this rank's device cuda:{}", what, t.str(),
              device_);
    GTA_CHECK(t.is_contiguous(), "NCCL {} needs a contiguous tensor, got {}", what, t.str());
  }

  // Queues `launch` (NCCL calls on stream_) behind the work queued so far on the compute
  // stream, and returns the Work that waits for it.
  template <typename Launch>
  std::unique_ptr<Work> enqueue(std::vector<Tensor> ts, std::string what, Launch&& launch) {
    cuda::DeviceGuard guard(device_);
    cudaEvent_t done = nullptr;
    try {
      GTA_CUDA_CHECK(cudaEventRecord(ready_, cuda::stream(device_)));
      GTA_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
      check(launch(), what.c_str());
      GTA_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
      GTA_CUDA_CHECK(cudaEventRecord(done, stream_));
    } catch (const std::exception& e) {
      fail_comm(e.what());
    }
    return std::make_unique<NcclWork>(this, std::move(ts), done, std::move(what));
  }

  // An NCCL operation failed or timed out: release the peers' NCCL state from this side, then end
  // the job.
  [[noreturn]] void fail_comm(const std::string& message) {
    if (comm_ != nullptr) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    mpi_->abort(message);
    std::abort();  // not reached
  }

  std::unique_ptr<MpiCommunicator> mpi_;  // first member: outlives the NCCL state
  double timeout_s_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;  // re-recorded for every call: a stream wait captures its latest record
};

void NcclWork::wait() {
  if (waited_) return;
  cuda::DeviceGuard guard(comm_->device());
  // Device side first: compute work queued from now on runs after the collective.
  GTA_CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(comm_->device()), done_, 0));
  waited_ = true;
  comm_->wait_done(done_, what_);
}

NcclWork::~NcclWork() {
  cuda::DeviceGuard guard(comm_->device());
  // Never waited: still order the compute stream behind the collective, so the buffer freed with
  // tensor_ is not handed to a kernel while NCCL may write it.
  if (!waited_) cudaStreamWaitEvent(cuda::stream(comm_->device()), done_, 0);
  cudaEventDestroy(done_);  // released by the driver once the event completes
}

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const LaunchEnv& env, double timeout_s, Device compute_device) {
  return std::make_unique<NcclCommunicator>(env, timeout_s, compute_device);
}

#else  // CPU-only build

std::unique_ptr<Communicator> make_nccl_communicator(const LaunchEnv&, double, Device compute_device) {
  fail("data parallel on {}: this build of gta has no CUDA backend, so no NCCL (rebuild with nvcc present)",
       compute_device.str());
}

#endif

}  // namespace gta::dist
