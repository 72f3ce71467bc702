// The dynamic loss scale of fp16 training, with torch.cuda.amp.GradScaler's rule: backward runs on loss × scale
// so that small fp16 gradients do not flush to zero; the optimizer divides the gradients by the scale before
// clipping. A step whose gradient is not finite (on any rank: the gradient collective carries it) is skipped and
// halves the scale; `growth_interval` finite steps in a row double it. Disabled (fp32, bf16): the scale is 1 and
// never changes. The scale is a power of two, so scaling and unscaling are exact.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

#include "train/settings.h"

namespace dualign::train {

class LossScaler {
 public:
  LossScaler() = default;  // disabled
  explicit LossScaler(const LossScaleSettings& settings);

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  // After every optimizer step, on every rank alike (the finiteness verdict is the same everywhere).
  void update(bool finite);

  // For the checkpoint: scale (float64) and growth_tracker (int64), restored exactly on resume.
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& state, const std::string& source);

 private:
  bool enabled_ = false;
  LossScaleSettings settings_;
  double scale_ = 1.0;
  int64_t growth_tracker_ = 0;  // finite steps since the last change of the scale
};

}  // namespace dualign::train
