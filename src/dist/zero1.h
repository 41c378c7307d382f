// ZeRO-1 (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter
// Models", stage 1): the AdamW state is sharded over the ranks of a data-parallel run
// (dist.zero1: true). Each rank keeps the moments, and the fp32 masters of bf16 parameters, only
// for the parameters it owns, and updates only those; the model itself stays replicated.
//
// Ownership: whole parameters, assigned in parameter order (nn::Params::all()) by a greedy
// balance of element counts: parameter i goes to the rank that owns the fewest elements so far
// (the lowest such rank on a tie). The same list gives the same plan on every rank, whatever the
// order ranks start in. A tensor listed under two names (a tied embedding) is one parameter,
// owned under its first name, and its other name goes with it (AdamW updates it once).
//
// One step, with P_r the parameters rank r owns and W the world size:
//   gradients   the existing bucketed all-reduce (GradSync) is kept: every rank receives every
//               averaged gradient g = (sum over ranks) / W, and uses only those of P_r. So the
//               communication is all-reduce + broadcast, not the reduce-scatter + all-gather of
//               the paper (the same bytes on the wire per step as without ZeRO-1, plus the
//               parameter broadcast; what ZeRO-1 saves here is optimizer memory, 1/W per rank).
//   clip        ||g||^2 = sum over r of (sum over P_r of sum g^2): each rank's owned squared sum,
//               added over ranks (Communicator::sum). The same norm as without sharding up to
//               the order of the additions (last-bit differences).
//   update      AdamW over P_r only (an optim::AdamW built on owned_params()).
//   parameters  each rank r broadcasts its updated P_r, flattened into one buffer per dtype and
//               device, to every rank (Communicator::broadcast).
// Checkpoints keep the format of unsharded runs: gather_state() brings the full optimizer state
// to rank 0 (each owner broadcasts its tensors in turn, on the host); on resume every rank reads
// the full file and keeps its own parameters' entries (owned_state()), so a ZeRO-1 checkpoint
// resumes on any number of ranks, with or without ZeRO-1, and the other way round.
#pragma once
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dist/communicator.h"
#include "optim/adamw.h"

namespace gta::dist {

class Zero1 {
 public:
  // `params`: every parameter of the model, in the same order on every rank.
  Zero1(Communicator& comm, const optim::NamedTensors& params);

  // The rank that owns the parameter named `name`.
  int owner(const std::string& name) const;
  // The parameters this rank owns (aliases included), in parameter order: build the AdamW on these.
  const optim::NamedTensors& owned_params() const { return owned_; }

  // The global gradient norm from the owned gradients (see above); when max_norm > 0 and the norm
  // exceeds it, the owned gradients are scaled by max_norm / norm. Returns the norm before
  // clipping. Collective.
  double clip_grad_norm(double max_norm);
  // Every rank receives the parameters their owners just updated. Collective.
  void broadcast_params();
  // The full optimizer state of `opt` (this rank's shard) merged over ranks, on rank 0 (host
  // tensors, the names and dtypes of an unsharded AdamW's state()); other ranks get only the step
  // count. Collective.
  optim::AdamWState gather_state(const optim::AdamW& opt);
  // The entries of a full optimizer state that belong to this rank's parameters (tensors whose
  // name is no parameter's are kept, so that AdamW::load_state reports them).
  optim::AdamWState owned_state(const optim::AdamWState& full) const;

 private:
  struct Param {
    std::string name;  // first name
    Tensor tensor;
    int owner = 0;
  };
  struct Group {  // parameters broadcast together: one owner, one dtype, one device
    int owner = 0;
    std::vector<size_t> members;  // indices into params_, in order
    int64_t numel = 0;
  };
  Communicator& comm_;
  std::vector<Param> params_;  // distinct tensors, in parameter order
  std::unordered_map<std::string, int> owner_of_;  // every name, aliases included
  optim::NamedTensors owned_;
  std::vector<Group> groups_;  // by owner, then first appearance
};

}  // namespace gta::dist
