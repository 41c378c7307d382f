// NCCL data parallelism on two GPUs: the communicator's collectives on CUDA tensors (sums in f32
// and bf16, ordering with the compute stream, broadcast, reduce-scatter, all-gather, scalars) and GradSync averaging GPU
// gradients in several buckets. Needs two ranks on two GPUs, so under plain ctest every test here
// skips; run it with
//   mpirun -np 2 build/gta_tests --gtest_filter='DistNccl*'
// (add --allow-run-as-root as root; bench/scaling_gpu.sh does this on the GPU machine).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "distributed/communicator.h"
#include "distributed/grad_sync.h"
#include "nn/model.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace gta;

namespace {

class DistNccl : public ::testing::Test {
 protected:
  // One communicator for the whole suite: MPI can be initialised once per process.
  static void SetUpTestSuite() {
    const dist::LaunchEnv env = dist::detect_launch_env();
    if (env.world_size != 2 || cuda_device_count() < 2) return;
    device_ = Device::cuda(env.local_rank);
    comm_ = dist::make_communicator(env, 120.0, device_).release();
  }
  static void TearDownTestSuite() {
    delete comm_;  // NCCL torn down, then MPI finalised
    comm_ = nullptr;
  }
  void SetUp() override {
    if (comm_ == nullptr)
      GTEST_SKIP() << "needs 2 visible GPUs and 2 ranks: mpirun -np 2 gta_tests --gtest_filter='DistNccl*'";
  }
  static dist::Communicator* comm_;
  static Device device_;
};

dist::Communicator* DistNccl::comm_ = nullptr;
Device DistNccl::device_ = Device::cpu();

TEST_F(DistNccl, UsesNcclOnTheLocalRanksGpu) {
  EXPECT_EQ(comm_->name(), "nccl");
  EXPECT_EQ(comm_->world_size(), 2);
  EXPECT_EQ(device_, Device::cuda(comm_->local_rank()));
  EXPECT_EQ(comm_->sum(comm_->rank() + 1.0), 3.0);
  EXPECT_EQ(comm_->max(comm_->rank() + 1.0), 2.0);
  comm_->barrier();
}

TEST_F(DistNccl, AllReduceSumsF32AndBf16) {
  const int r = comm_->rank();
  const int64_t n = 1000003;  // odd, several MB
  for (DType dt : {DType::f32, DType::bf16}) {
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>(i % 31) * (r + 1);  // exact in bf16, sums too
    Tensor t = Tensor::from_doubles(v, {n}, dt).to(device_);
    comm_->all_reduce(t);
    const std::vector<double> got = t.to_doubles();
    int64_t bad = 0;
    for (int64_t i = 0; i < n; ++i) bad += got[i] != static_cast<double>(i % 31) * 3;
    EXPECT_EQ(bad, 0) << dtype_name(dt);
  }
}

TEST_F(DistNccl, AsyncAllReduceIsOrderedWithTheComputeStream) {
  const int r = comm_->rank();
  // Work queued before the all-reduce produces its input; work queued after wait() sees the sum.
  Tensor t = ops::scale(Tensor::full({1023, 257}, 1.0, DType::f32, device_), r + 1.0);
  auto work = comm_->all_reduce_async(t);
  Tensor a = Tensor::full({512, 512}, 0.5, DType::f32, device_);
  Tensor busy = ops::matmul(a, a);  // compute that may overlap the collective
  work->wait();
  Tensor s = ops::scale(t, 2.0);
  const std::vector<double> got = s.to_doubles();
  EXPECT_TRUE(std::all_of(got.begin(), got.end(), [](double x) { return x == 6.0; }));
  EXPECT_EQ(busy.to_doubles()[0], 128.0);
}

TEST_F(DistNccl, BroadcastCudaAndCpuTensors) {
  const int r = comm_->rank();
  Tensor g = Tensor::full({77, 3}, r == 1 ? 5.0 : -1.0, DType::f32, device_);
  comm_->broadcast(g, 1);
  const std::vector<double> gv = g.to_doubles();
  EXPECT_TRUE(std::all_of(gv.begin(), gv.end(), [](double x) { return x == 5.0; }));
  Tensor ids = Tensor::from_vector(std::vector<int32_t>{r, r + 10, r + 20}, {3}).to(device_);
  comm_->broadcast(ids, 0);
  EXPECT_EQ(ids.to_doubles(), (std::vector<double>{0, 10, 20}));
  Tensor c = Tensor::full({5}, r == 0 ? 7.0 : 0.0);  // CPU: through MPI
  comm_->broadcast(c, 0);
  EXPECT_EQ(c.to_doubles(), std::vector<double>(5, 7.0));
}

// ZeRO-1's collectives: rank r's part of the averaged whole, and every rank's part gathered; on
// CUDA tensors in f32 and bf16 (NCCL) and on CPU tensors (through MPI).
TEST_F(DistNccl, ReduceScatterMeanAndAllGather) {
  const int r = comm_->rank();
  const int64_t n = 100003;  // elements per rank: odd
  for (DType dt : {DType::f32, DType::bf16}) {
    for (Device dev : {device_, Device::cpu()}) {
      if (dev.is_cpu() && dt == DType::bf16) continue;  // MPI reduces f32 and f64
      std::vector<double> v(static_cast<size_t>(2 * n));
      for (int64_t i = 0; i < 2 * n; ++i) v[i] = static_cast<double>(i % 29) * (2 * r + 1);  // mean: 2 (i % 29)
      Tensor whole = Tensor::from_doubles(v, {2 * n}, dt).to(dev);
      Tensor part = Tensor::empty({n}, dt, dev);
      comm_->reduce_scatter_mean(whole, part);
      std::vector<double> got = part.to_doubles();
      int64_t bad = 0;
      for (int64_t i = 0; i < n; ++i) bad += got[i] != static_cast<double>((r * n + i) % 29) * 2;
      EXPECT_EQ(bad, 0) << "reduce-scatter " << dtype_name(dt) << " on " << dev.str();

      Tensor mine = Tensor::full({n}, r + 1.0, dt, dev);
      Tensor all = Tensor::empty({2 * n}, dt, dev);
      comm_->all_gather(mine, all);
      got = all.to_doubles();
      bad = 0;
      for (int64_t i = 0; i < 2 * n; ++i) bad += got[i] != (i < n ? 1.0 : 2.0);
      EXPECT_EQ(bad, 0) << "all-gather " << dtype_name(dt) << " on " << dev.str();
    }
  }
  Tensor whole = Tensor::empty({7}, DType::f32, device_), part = Tensor::empty({3}, DType::f32, device_);
  EXPECT_THROW(comm_->reduce_scatter_mean(whole, part), Error);  // 7 != 2 x 3: a clear error on both ranks
}

// GradSync on GPU gradients: after finish(), every rank holds (sum of the ranks' gradients) / 2,
// computed here independently from each rank's local gradients (copied to the CPU, summed over MPI).
void check_grad_sync(dist::Communicator& comm, Device device, DType dtype, double tol) {
  const config::ModelConfig cfg = gta_test::tiny_gqa_config(/*tied=*/true, /*qkv_bias=*/true);
  nn::Model model(cfg, dtype, 1);
  model.params().move_to(device);
  const auto& params = model.params().all();
  dist::GradSync sync(comm, params, 0.001);  // ~1 KB buckets: several in flight during backward
  Tensor tokens = gta_test::random_tokens(2, 9, cfg.vocab_size, 100 + comm.rank()).to(device);

  sync.set_sync(false);  // local gradients only
  model.loss(tokens).backward();
  std::vector<Tensor> want;
  for (const auto& [name, p] : params) {
    Tensor local = p.grad().to(Device::cpu()).to(DType::f32).clone();
    comm.all_reduce(local);  // CPU tensor: MPI
    want.push_back(ops::scale(local, 0.5));
    Tensor(p).zero_grad();
  }

  sync.set_sync(true);
  model.loss(tokens).backward();
  sync.finish();
  EXPECT_GT(sync.buckets_last_step(), 1);
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& g = params[i].second.grad();
    ASSERT_EQ(g.device(), device) << params[i].first;  // the gradients stayed on the GPU
    const std::vector<double> got = g.to_doubles(), ref = want[i].to_doubles();
    double scale = 1e-12, worst = 0;
    for (double x : ref) scale = std::max(scale, std::abs(x));
    for (size_t k = 0; k < got.size(); ++k) worst = std::max(worst, std::abs(got[k] - ref[k]));
    EXPECT_LE(worst, tol * scale) << params[i].first << " (" << dtype_name(dtype) << ")";
  }
}

TEST_F(DistNccl, GradSyncAveragesGpuGradientsF32) { check_grad_sync(*comm_, device_, DType::f32, 1e-6); }

TEST_F(DistNccl, GradSyncAveragesGpuGradientsBf16) { check_grad_sync(*comm_, device_, DType::bf16, 2e-2); }

}  // namespace
