// ZeRO-1 optimizer-state sharding (see zero1.h).
#include "distributed/zero1.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/copy.h"
#include "ops/ops.h"
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
  // Layouts: one per dtype and device, each rank's parameters in its own segment.
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& t = params_[i].tensor;
    auto l = std::find_if(layouts_.begin(), layouts_.end(),
                          [&](const Layout& x) { return x.dtype == t.dtype() && x.device == t.device(); });
    if (l == layouts_.end())
      l = layouts_.insert(layouts_.end(), Layout{t.dtype(), t.device(), std::vector<std::vector<size_t>>(world), {}, 0});
    l->members[params_[i].owner].push_back(i);
  }
  for (Layout& l : layouts_) {
    for (const std::vector<size_t>& ids : l.members) {
      int64_t n = 0;
      for (size_t i : ids) n += params_[i].tensor.numel();
      l.used.push_back(n);
      l.segment = std::max(l.segment, n);
    }
    // A multiple of 8 elements: every segment starts 16-byte aligned, so the copies in and out of
    // the flat buffer move 16 bytes at a time (kernels::gather_pieces).
    l.segment = (l.segment + 7) / 8 * 8;
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

void Zero1::pack(const std::vector<size_t>& ids, Tensor (*pick)(const Param&), const Tensor& flat, int64_t at,
                 bool to_flat) const {
#ifdef GTA_WITH_CUDA
  if (flat.device().is_cuda()) {
    // One launch per direction for all the pieces rather than a copy per tensor.
    std::vector<kernels::FlatPiece> pieces;
    for (size_t i : ids) {
      const Tensor t = pick(params_[i]);
      pieces.push_back({t.raw_data(), t.numel()});
    }
    if (pieces.empty()) return;
    cuda::DeviceGuard guard(flat.device().index);
    void* base = static_cast<char*>(flat.raw_data()) + at * static_cast<int64_t>(dtype_size(flat.dtype()));
    if (to_flat) kernels::gather_pieces(flat.dtype(), base, pieces);
    else kernels::scatter_pieces(flat.dtype(), base, pieces);
    return;
  }
#endif
  for (size_t i : ids) {
    const Tensor t = pick(params_[i]);
    const Tensor piece = flat.slice(0, at, at + t.numel()).reshape(t.shape());
    if (to_flat) copy_strided(piece, t);
    else copy_strided(t, piece);
    at += t.numel();
  }
}

void Zero1::zero_padding(const Layout& l, int r, const Tensor& flat, int64_t at) {
  const int64_t pad = l.segment - l.used[r];
  if (pad > 0) ops::fill_(flat.slice(0, at + l.used[r], at + l.segment), 0.0);
}

void Zero1::reduce_scatter_grads() {
  for (const Param& p : params_) {
    GTA_CHECK(p.tensor.grad().defined(),
              "ZeRO-1: parameter {} has no gradient this step; every parameter must take part in the loss on every "
              "rank",
              p.name);
    GTA_CHECK(p.tensor.grad().is_contiguous(), "ZeRO-1: the gradient of {} is not contiguous ({})", p.name,
              p.tensor.grad().str());
  }
  const int world = comm_.world_size(), rank = comm_.rank();
  auto grad_of = [](const Param& p) { return p.tensor.grad(); };
  for (const Layout& l : layouts_) {
    const Tensor flat = Tensor::empty({world * l.segment}, l.dtype, l.device);
    for (int r = 0; r < world; ++r) {
      pack(l.members[r], grad_of, flat, r * l.segment, true);
      zero_padding(l, r, flat, r * l.segment);  // summed too: keep it finite
    }
    const Tensor mine = Tensor::empty({l.segment}, l.dtype, l.device);
    comm_.reduce_scatter_mean(flat, mine);
    pack(l.members[rank], grad_of, mine, 0, false);
  }
}

void Zero1::all_gather_params() {
  const int world = comm_.world_size(), rank = comm_.rank();
  auto value_of = [](const Param& p) { return p.tensor.detach(); };
  for (const Layout& l : layouts_) {
    const Tensor mine = Tensor::empty({l.segment}, l.dtype, l.device);
    pack(l.members[rank], value_of, mine, 0, true);
    zero_padding(l, rank, mine, 0);
    const Tensor flat = Tensor::empty({world * l.segment}, l.dtype, l.device);
    comm_.all_gather(mine, flat);
    for (int r = 0; r < world; ++r)
      if (r != rank) pack(l.members[r], value_of, flat, r * l.segment, false);
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
