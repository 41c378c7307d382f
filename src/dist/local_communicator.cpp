// One process: every collective is the identity.
#include "dist/local_communicator.h"

namespace gta::dist {

namespace {
struct DoneWork : Work {
  void wait() override {}
};
}  // namespace

std::unique_ptr<Work> LocalCommunicator::all_reduce_async(const Tensor&) { return std::make_unique<DoneWork>(); }

void LocalCommunicator::abort(const std::string& message) { fail("{}", message); }

}  // namespace gta::dist
