// Learning-rate schedule: linear warm-up from 0, then constant or cosine decay to 0 at the last step.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "util/error.h"

namespace dualign::train {

inline double learning_rate(int64_t step, int64_t total_steps, double base_lr, int64_t warmup_steps,
                            const std::string& kind) {
  if (warmup_steps > 0 && step < warmup_steps) return base_lr * static_cast<double>(step + 1) / warmup_steps;
  if (kind == "constant") return base_lr;
  if (kind == "cosine") {
    double span = std::max<int64_t>(1, total_steps - warmup_steps);
    double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / span);
    return base_lr * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  fail("train.lr_schedule: unknown schedule '{}' (known: constant, cosine)", kind);
}

}  // namespace dualign::train
