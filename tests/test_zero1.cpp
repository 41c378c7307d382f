// ZeRO-1's ownership plan, state filtering and flat segment layout (distributed/zero1.h), on
// communicators that only name a rank or script the collectives. Sharded training itself is
// tested end to end under mpirun (tests/cli/dist_zero1.sh, dist_zero1_gpu.sh).
#include <gtest/gtest.h>

#include <set>

#include "core/strided.h"
#include "distributed/zero1.h"
#include "ops/copy.h"
#include "ops/ops.h"
#include "test_util.h"

namespace {

using namespace gta;

// Rank `rank` of `world`; any collective is a test failure.
class RankOnly : public dist::Communicator {
 public:
  RankOnly(int rank, int world) : rank_(rank), world_(world) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return rank_; }
  std::string name() const override { return "rank-only"; }
  std::unique_ptr<dist::Work> all_reduce_async(const Tensor&) override { fail("unexpected all-reduce"); }
  double sum(double) override { fail("unexpected sum"); }
  double max(double) override { fail("unexpected max"); }
  void broadcast(const Tensor&, int) override { fail("unexpected broadcast"); }
  void reduce_scatter_mean(const Tensor&, const Tensor&) override { fail("unexpected reduce-scatter"); }
  void all_gather(const Tensor&, const Tensor&) override { fail("unexpected all-gather"); }
  void barrier() override { fail("unexpected barrier"); }
  void barrier_within(double, const std::string&) override { fail("unexpected barrier"); }
  [[noreturn]] void abort(const std::string& message) override { fail("{}", message); }

 private:
  int rank_, world_;
};

optim::NamedTensors params_of(const std::vector<std::pair<std::string, int64_t>>& sizes) {
  optim::NamedTensors out;
  for (const auto& [name, n] : sizes) out.emplace_back(name, Tensor::zeros({n}, DType::f64));
  return out;
}

TEST(Zero1, GreedyBalanceInParameterOrder) {
  // Each parameter goes to the rank owning the fewest elements so far, the lowest on a tie.
  const auto params = params_of({{"a", 100}, {"b", 10}, {"c", 10}, {"d", 50}, {"e", 40}, {"f", 5}, {"g", 1}});
  RankOnly comm(0, 3);
  dist::Zero1 z(comm, params);
  // loads: a->0 (100,0,0) b->1 (100,10,0) c->2 (100,10,10) d->1 (100,60,10) e->2 (100,60,50)
  //        f->2 (100,60,55) g->2 (100,60,56)
  const std::vector<int> want = {0, 1, 2, 1, 2, 2, 2};
  for (size_t i = 0; i < params.size(); ++i) EXPECT_EQ(z.owner(params[i].first), want[i]) << params[i].first;
  EXPECT_ERROR_HAS(z.owner("nope"), "no parameter named nope");
}

TEST(Zero1, OwnedParamsPartitionTheModelAndAliasesFollowTheirTensor) {
  auto params = params_of({{"model.embed_tokens.weight", 64}, {"x", 8}, {"y", 8}, {"z", 60}});
  params.emplace_back("lm_head.weight", params[0].second);  // tied: the embedding under a second name
  std::set<std::string> seen;
  for (int r = 0; r < 2; ++r) {
    RankOnly comm(r, 2);
    dist::Zero1 z(comm, params);
    for (const auto& [name, t] : z.owned_params()) {
      EXPECT_TRUE(seen.insert(name).second) << name << " owned twice";
      EXPECT_EQ(z.owner(name), r);
    }
    EXPECT_EQ(z.owner("lm_head.weight"), z.owner("model.embed_tokens.weight"));
  }
  EXPECT_EQ(seen.size(), params.size());
}

TEST(Zero1, OwnedStateKeepsOwnEntriesAndUnknownOnes) {
  const auto params = params_of({{"layers.0.w", 10}, {"layers.1.w", 10}});
  RankOnly comm(1, 2);
  dist::Zero1 z(comm, params);  // layers.0.w -> rank 0, layers.1.w -> rank 1
  optim::AdamWState full;
  full.step = 7;
  for (const char* key : {"layers.0.w.exp_avg", "layers.0.w.exp_avg_sq", "layers.1.w.exp_avg",
                          "layers.1.w.exp_avg_sq", "layers.1.w.master", "stray"})
    full.tensors[key] = Tensor::zeros({10}, DType::f64);
  const optim::AdamWState own = z.owned_state(full);
  EXPECT_EQ(own.step, 7);
  std::set<std::string> keys;
  for (const auto& [k, t] : own.tensors) keys.insert(k);
  // "stray" is kept so that AdamW::load_state names it as unexpected.
  EXPECT_EQ(keys, (std::set<std::string>{"layers.1.w.exp_avg", "layers.1.w.exp_avg_sq", "layers.1.w.master", "stray"}));
}

// Rank 1 of 2 whose reduce-scatter returns twice its own part of the input and whose all-gather
// puts 100, 101, ... in rank 0's part; both record their input.
class Scripted : public RankOnly {
 public:
  Scripted() : RankOnly(1, 2) {}
  void reduce_scatter_mean(const Tensor& in, const Tensor& out) override {
    rs_in = in.to_doubles();
    const int64_t n = out.numel();
    copy_strided(out, ops::scale(in.slice(0, n, 2 * n), 2.0));
  }
  void all_gather(const Tensor& in, const Tensor& out) override {
    ag_in = in.to_doubles();
    const int64_t n = in.numel();
    std::vector<double> v(static_cast<size_t>(2 * n));
    for (int64_t i = 0; i < n; ++i) v[i] = 100.0 + static_cast<double>(i);
    std::copy(ag_in.begin(), ag_in.end(), v.begin() + n);
    copy_strided(out, Tensor::from_doubles(v, {2 * n}, out.dtype()));
  }
  std::vector<double> rs_in, ag_in;
};

TEST(Zero1, SegmentsPerRankPaddedToTheLargest) {
  // a -> rank 0 (5 elements); b, c -> rank 1 (3 + 1): segments of 5 rounded up to 8, padded with zeros.
  const auto params = params_of({{"a", 5}, {"b", 3}, {"c", 1}});
  Scripted comm;
  dist::Zero1 z(comm, params);
  EXPECT_ERROR_HAS(z.reduce_scatter_grads(), "parameter a has no gradient");
  Tensor(params[0].second).set_grad(Tensor::from_doubles({1, 2, 3, 4, 5}, {5}, DType::f64));
  Tensor(params[1].second).set_grad(Tensor::from_doubles({10, 11, 12}, {3}, DType::f64));
  Tensor(params[2].second).set_grad(Tensor::from_doubles({20}, {1}, DType::f64));
  z.reduce_scatter_grads();
  EXPECT_EQ(comm.rs_in, (std::vector<double>{1, 2, 3, 4, 5, 0, 0, 0, 10, 11, 12, 20, 0, 0, 0, 0}));
  EXPECT_EQ(params[0].second.grad().to_doubles(), (std::vector<double>{1, 2, 3, 4, 5}));  // rank 0's: untouched
  EXPECT_EQ(params[1].second.grad().to_doubles(), (std::vector<double>{20, 22, 24}));
  EXPECT_EQ(params[2].second.grad().to_doubles(), (std::vector<double>{40}));

  copy_strided(params[1].second, Tensor::from_doubles({7, 8, 9}, {3}, DType::f64));
  copy_strided(params[2].second, Tensor::from_doubles({6}, {1}, DType::f64));
  z.all_gather_params();
  EXPECT_EQ(comm.ag_in, (std::vector<double>{7, 8, 9, 6, 0, 0, 0, 0}));
  EXPECT_EQ(params[0].second.to_doubles(), (std::vector<double>{100, 101, 102, 103, 104}));
  EXPECT_EQ(params[1].second.to_doubles(), (std::vector<double>{7, 8, 9}));  // its own: kept
}

}  // namespace
