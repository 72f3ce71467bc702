#include "diffusion/guidance.h"

#include <torch/torch.h>

namespace dualign::diffusion {

ScoreFn classifier_free_guidance(ScoreFn cond, ScoreFn uncond, double scale) {
  return [cond = std::move(cond), uncond = std::move(uncond), scale](const at::Tensor& x, const at::Tensor& t) {
    auto u = uncond(x, t);
    return u + scale * (cond(x, t) - u);
  };
}

ScoreFn classifier_free_guidance_batched(ScoreFn model_on_pair, double scale) {
  return [model = std::move(model_on_pair), scale](const at::Tensor& x, const at::Tensor& t) {
    auto out = model(torch::cat({x, x}), torch::cat({t, t}));
    auto halves = out.chunk(2);
    return halves[0] + scale * (halves[1] - halves[0]);
  };
}

GuidanceFn cfg_guidance(ScoreFn uncond_eps, double scale) {
  return [uncond = std::move(uncond_eps), scale](const at::Tensor& x, const at::Tensor& t, const at::Tensor& eps) {
    return (scale - 1) * (eps - uncond(x, t));
  };
}

}  // namespace dualign::diffusion
