// ZeRO-1's ownership plan and state filtering (dist/zero1.h), on a communicator that only names a
// rank: these parts do not communicate. Sharded training itself is tested end to end under
// mpirun (tests/cli/dist_zero1.sh).
#include <gtest/gtest.h>

#include <set>

#include "dist/zero1.h"
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
  void barrier() override { fail("unexpected barrier"); }
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

}  // namespace
