// Learning-rate schedules: a pure function of (OptimConfig, total steps, step).
//
// `step` is the 0-based index of the optimizer step about to be taken (the first update uses
// step 0). With lr = cfg.lr, W = cfg.warmup_steps, S = total steps, lr_min = lr * min_lr_ratio:
//   step < W:            lr * (step + 1) / W          (linear warmup; step W-1 reaches lr)
//   then, with p = (step - W) / (S - W) clamped to [0, 1] (p = 1 when S <= W):
//     cosine:   lr_min + (lr - lr_min) * (1 + cos(pi p)) / 2
//     linear:   lr - (lr - lr_min) * p
//     constant: lr
// so the decay starts at lr at step W and reaches lr_min at step S (and stays there after).
#pragma once
#include <cstdint>

#include "config/config.h"

namespace gta::optim {

// Throws gta::Error for an unknown schedule name or a negative step / warmup / total.
double lr_at(const config::OptimConfig& cfg, int64_t total_steps, int64_t step);

}  // namespace gta::optim
