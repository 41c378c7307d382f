#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace gta::optim {

double lr_at(const config::OptimConfig& cfg, int64_t total_steps, int64_t step) {
  GTA_CHECK(step >= 0, "lr schedule: step must be >= 0, got {}", step);
  GTA_CHECK(total_steps >= 0, "lr schedule: total steps must be >= 0, got {}", total_steps);
  GTA_CHECK(cfg.warmup_steps >= 0, "optim.warmup_steps must be >= 0, got {}", cfg.warmup_steps);
  const bool cosine = cfg.schedule == "cosine", linear = cfg.schedule == "linear",
             constant = cfg.schedule == "constant";
  GTA_CHECK(cosine || linear || constant, "optim.schedule: expected cosine, linear or constant, got '{}'",
            cfg.schedule);
  const double lr = cfg.lr;
  const int64_t W = cfg.warmup_steps;
  if (step < W) return lr * static_cast<double>(step + 1) / static_cast<double>(W);
  if (constant) return lr;
  const double lr_min = lr * cfg.min_lr_ratio;
  const double p = total_steps > W ? std::clamp(static_cast<double>(step - W) / static_cast<double>(total_steps - W), 0.0, 1.0)
                                   : 1.0;
  if (cosine) return lr_min + (lr - lr_min) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
  return lr - (lr - lr_min) * p;
}

}  // namespace gta::optim
