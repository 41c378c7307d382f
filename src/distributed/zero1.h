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
//   layout      the parameters of one dtype and device lie in W equal segments of a flat buffer,
//               segment r holding P_r back to back (padded to the largest rank's total, rounded
//               up to 8 elements so every segment starts 16-byte aligned), so one
//               reduce-scatter gives each rank exactly its owners' gradients and one all-gather
//               gives every rank every parameter.
//   gradients   reduce_scatter_grads(), after the last micro-step's backward, in place of GradSync's
//               all-reduce: the gradients are packed into the flat buffer, which is reduce-scattered
//               with averaging (g = sum over ranks / W); rank r's segment is unpacked into P_r's
//               gradients. The other gradients stay this rank's own and are not read again.
//   clip        ||g||^2 = sum over r of (sum over P_r of sum g^2): each rank's owned squared sum,
//               added over ranks (Communicator::sum). The same norm as without sharding up to
//               the order of the additions (last-bit differences).
//   update      AdamW over P_r only (an optim::AdamW built on owned_params()).
//   parameters  all_gather_params(): P_r packed into segment r, all-gathered, unpacked everywhere.
// Each gradient and parameter byte crosses the wire (W-1)/W times per direction, as in an
// all-reduce (a reduce-scatter then an all-gather), and each rank's optimizer touches 1/W of the
// state. The reduce-scatter runs after backward rather than beside it (bucketed by owner
// segments it could not start early, since gradients complete in reverse layer order).
// Checkpoints keep the format of unsharded runs: gather_state() brings the full optimizer state
// to rank 0 (each owner broadcasts its tensors in turn, on the host); on resume every rank reads
// the full file and keeps its own parameters' entries (owned_state()), so a ZeRO-1 checkpoint
// resumes on any number of ranks, with or without ZeRO-1, and the other way round.
#pragma once
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "distributed/communicator.h"
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
  // The mean over ranks of each owned gradient, in place (see above); this rank's other
  // gradients are left as they are. Every parameter must have a gradient. Collective.
  void reduce_scatter_grads();
  // Every rank receives the parameters their owners just updated. Collective.
  void all_gather_params();
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
  struct Layout {  // the parameters of one dtype and device in a flat buffer of W segments
    DType dtype;
    Device device;
    std::vector<std::vector<size_t>> members;  // per rank: indices into params_, in order
    std::vector<int64_t> used;                 // per rank: the elements of its parameters
    int64_t segment = 0;  // elements per segment: the largest rank's total, rounded up to 8
  };
  // Zeros rank r's padding in a segment of `flat` that starts at element `at`.
  static void zero_padding(const Layout& l, int r, const Tensor& flat, int64_t at);
  // Copies the tensors pick(params_[i]) of `ids` to (or from) `flat`, back to back from element `at`.
  void pack(const std::vector<size_t>& ids, Tensor (*pick)(const Param&), const Tensor& flat, int64_t at,
            bool to_flat) const;
  Communicator& comm_;
  std::vector<Param> params_;  // distinct tensors, in parameter order
  std::unordered_map<std::string, int> owner_of_;  // every name, aliases included
  optim::NamedTensors owned_;
  std::vector<Layout> layouts_;  // by first appearance of their dtype and device
};

}  // namespace gta::dist
