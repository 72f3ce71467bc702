#include "train/loss_scaler.h"

#include <torch/torch.h>

#include "util/error.h"

namespace dualign::train {

LossScaler::LossScaler(const LossScaleSettings& settings)
    : enabled_(true), settings_(settings), scale_(settings.init) {}

void LossScaler::update(bool finite) {
  if (!enabled_) return;
  if (!finite) {
    scale_ *= settings_.backoff_factor;
    growth_tracker_ = 0;
  } else if (++growth_tracker_ == settings_.growth_interval) {
    scale_ *= settings_.growth_factor;
    growth_tracker_ = 0;
  }
}

std::map<std::string, at::Tensor> LossScaler::state() const {
  return {{"scale", torch::tensor(scale_, torch::kFloat64)},
          {"growth_tracker", torch::tensor(growth_tracker_, torch::kInt64)}};
}

void LossScaler::load_state(const std::map<std::string, at::Tensor>& state, const std::string& source) {
  for (const char* key : {"scale", "growth_tracker"})
    if (!state.count(key)) fail("checkpoint {}: tensor 'loss_scaler/{}' is missing (train.precision=fp16)", source, key);
  scale_ = state.at("scale").item<double>();
  growth_tracker_ = state.at("growth_tracker").item<int64_t>();
  DUALIGN_CHECK(scale_ > 0 && std::isfinite(scale_), "checkpoint {}: loss scale {} is not a positive number", source,
                scale_);
}

}  // namespace dualign::train
