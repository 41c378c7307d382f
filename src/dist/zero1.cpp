// ZeRO-1 optimizer-state sharding (see zero1.h).
#include "dist/zero1.h"

#include <cmath>

#include "core/error.h"
#include "core/strided.h"
#include "optim/clip.h"
#ifdef GTA_WITH_CUDA
#include "core/cuda_runtime.h"
#include "kernels/copy.h"
#endif

namespace gta::dist {

Zero1::Zero1(Communicator& comm, const optim::NamedTensors& params) : comm_(comm) {
  const int world = comm.world_size();
  std::vector<int64_t> load(static_cast<size_t>(world), 0);  // elements owned so far, per rank
  std::unordered_map<const TensorImpl*, int> by_impl;
  for (const auto& [name, t] : params) {
    GTA_CHECK(!owner_of_.count(name), "ZeRO-1: parameter {} listed twice", name);
    auto it = by_impl.find(t.impl());
    if (it == by_impl.end()) {
      // Greedy balance: the least-loaded rank, the lowest on a tie.
      int r = 0;
      for (int q = 1; q < world; ++q)
        if (load[q] < load[r]) r = q;
      load[r] += t.numel();
      it = by_impl.emplace(t.impl(), r).first;
      params_.push_back({name, t, r});
    }
    owner_of_[name] = it->second;
    if (it->second == comm.rank()) owned_.emplace_back(name, t);
  }
  // Broadcast groups: each owner's parameters, one flat buffer per dtype and device, in order.
  for (int r = 0; r < world; ++r) {
    const size_t first_group = groups_.size();
    for (size_t i = 0; i < params_.size(); ++i) {
      if (params_[i].owner != r) continue;
      const Tensor& t = params_[i].tensor;
      Group* g = nullptr;
      for (size_t k = first_group; k < groups_.size() && !g; ++k) {
        const Tensor& f = params_[groups_[k].members.front()].tensor;
        if (f.dtype() == t.dtype() && f.device() == t.device()) g = &groups_[k];
      }
      if (!g) g = &groups_.emplace_back(Group{r, {}, 0});
      g->members.push_back(i);
      g->numel += t.numel();
    }
  }
}

int Zero1::owner(const std::string& name) const {
  auto it = owner_of_.find(name);
  GTA_CHECK(it != owner_of_.end(), "ZeRO-1: no parameter named {}", name);
  return it->second;
}

double Zero1::clip_grad_norm(double max_norm) {
  GTA_CHECK(max_norm >= 0 && !std::isnan(max_norm), "clip_grad_norm: max_norm must be >= 0, got {}", max_norm);
  // Every gradient is owned by exactly one rank: the owned squared sums add up to ||g||^2.
  const double norm = std::sqrt(comm_.sum(optim::grad_sum_squares(owned_)));
  // Only owned gradients are read from here on (by this rank's AdamW), so only they are scaled.
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) optim::scale_grads(owned_, max_norm / norm);
  return norm;
}

void Zero1::broadcast_params() {
  for (const Group& g : groups_) {
    const bool send = g.owner == comm_.rank();
    const Tensor& first = params_[g.members.front()].tensor;
    Tensor flat = Tensor::empty({g.numel}, first.dtype(), first.device());
#ifdef GTA_WITH_CUDA
    if (first.device().is_cuda()) {
      // One launch per direction for the whole group rather than a copy per parameter; queued on
      // the compute stream, which the broadcast is ordered behind (and orders later work behind).
      std::vector<kernels::FlatPiece> pieces;
      for (size_t i : g.members) pieces.push_back({params_[i].tensor.raw_data(), params_[i].tensor.numel()});
      cuda::DeviceGuard guard(first.device().index);
      if (send) kernels::gather_pieces(first.dtype(), flat.raw_data(), pieces);
      comm_.broadcast(flat, g.owner);
      if (!send) kernels::scatter_pieces(first.dtype(), flat.raw_data(), pieces, 1.0);  // x 1: exact
      continue;
    }
#endif
    auto for_each_piece = [&](auto&& fn) {
      int64_t off = 0;
      for (size_t i : g.members) {
        const Tensor p = params_[i].tensor.detach();
        fn(p, flat.slice(0, off, off + p.numel()).reshape(p.shape()));
        off += p.numel();
      }
    };
    if (send) for_each_piece([](const Tensor& p, const Tensor& piece) { copy_strided(piece, p); });
    comm_.broadcast(flat, g.owner);
    if (!send) for_each_piece([](const Tensor& p, const Tensor& piece) { copy_strided(p, piece); });
  }
}

optim::AdamWState Zero1::gather_state(const optim::AdamW& opt) {
  const optim::AdamWState local = opt.state();
  const int rank = comm_.rank();
  optim::AdamWState full;
  full.step = local.step;  // every rank's AdamW has taken the same steps
  for (const Param& p : params_) {
    // AdamW's layout (optim/adamw.h): moments in f64 for f64 parameters, f32 otherwise, and an f32
    // master for bf16 parameters. Sent on the host: a checkpoint is written from the host anyway.
    const DType state_dtype = p.tensor.dtype() == DType::f64 ? DType::f64 : DType::f32;
    std::vector<std::string> keys = {p.name + ".exp_avg", p.name + ".exp_avg_sq"};
    if (p.tensor.dtype() == DType::bf16) keys.push_back(p.name + ".master");
    for (const std::string& key : keys) {
      if (p.owner == 0) {  // rank 0 holds it already; nothing to send
        if (rank == 0) full.tensors[key] = local.tensors.at(key);
        continue;
      }
      // Broadcast (to every rank, though only rank 0 keeps it): the communicator has no
      // point-to-point send, and a checkpoint's extra traffic is small next to training's.
      Tensor buf = p.owner == rank
                       ? local.tensors.at(key).detach().to(Device::cpu()).to(state_dtype).contiguous()
                       : Tensor::empty(p.tensor.shape(), state_dtype, Device::cpu());
      comm_.broadcast(buf, p.owner);
      if (rank == 0) full.tensors[key] = buf;
    }
  }
  return full;
}

optim::AdamWState Zero1::owned_state(const optim::AdamWState& full) const {
  optim::AdamWState out;
  out.step = full.step;
  for (const auto& [key, t] : full.tensors) {
    // Keys are "<parameter>.<exp_avg|exp_avg_sq|master>".
    const size_t dot = key.rfind('.');
    auto it = dot == std::string::npos ? owner_of_.end() : owner_of_.find(key.substr(0, dot));
    if (it == owner_of_.end() || it->second == comm_.rank()) out.tensors[key] = t;
  }
  return out;
}

}  // namespace gta::dist
