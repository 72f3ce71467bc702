// The denoiser as evaluation sees it: model output (ε or v, per the schedule) at (x_t, t, condition). A plain
// function so that metrics can be checked against closed-form "models" in tests; wrap a ScoreModel with
// denoiser_of().
#pragma once
#include <torch/torch.h>

#include <functional>

#include "models/score_model.h"

namespace dualign::eval {

using Denoiser =
    std::function<torch::Tensor(const torch::Tensor& x_t, const torch::Tensor& t, const data::Condition& cond)>;

// Calls model.forward on the model's device and returns the output on x_t's device.
inline Denoiser denoiser_of(models::ScoreModel& model) {
  return [&model](const torch::Tensor& x_t, const torch::Tensor& t, const data::Condition& cond) {
    const auto device = model.parameters().front().device();
    return model.forward(x_t.to(device), t.to(device), cond.to(device)).to(x_t.device());
  };
}

}  // namespace dualign::eval
