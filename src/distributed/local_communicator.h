#pragma once
#include "core/error.h"
#include "distributed/communicator.h"

namespace gta::dist {

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string name() const override { return "local"; }
  std::unique_ptr<Work> all_reduce_async(const Tensor& t) override;
  double sum(double v) override { return v; }
  double max(double v) override { return v; }
  void broadcast(const Tensor&, int) override {}
  void reduce_scatter_mean(const Tensor& in, const Tensor& out) override;
  void all_gather(const Tensor& in, const Tensor& out) override;
  void barrier() override {}
  void barrier_within(double, const std::string&) override {}
  [[noreturn]] void abort(const std::string& message) override;
};

}  // namespace gta::dist
