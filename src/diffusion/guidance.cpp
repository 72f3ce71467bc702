#include "diffusion/guidance.h"

#include <torch/torch.h>

#include <numeric>

namespace dualign::diffusion {

ScoreFn classifier_free_guidance(ScoreFn cond, ScoreFn uncond, double scale) {
  return [cond = std::move(cond), uncond = std::move(uncond), scale](const at::Tensor& x, const at::Tensor& t) {
    auto u = uncond(x, t);
    return u + scale * (cond(x, t) - u);
  };
}

at::Tensor rescale_guidance(const at::Tensor& guided, const at::Tensor& conditional, double rescale) {
  std::vector<int64_t> dims(size_t(guided.dim() - 1));
  std::iota(dims.begin(), dims.end(), 1);
  auto std_cond = conditional.std(dims, /*unbiased=*/true, /*keepdim=*/true);
  auto std_guided = guided.std(dims, /*unbiased=*/true, /*keepdim=*/true);
  auto rescaled = guided * (std_cond / std_guided);
  return rescale * rescaled + (1 - rescale) * guided;
}

ScoreFn classifier_free_guidance_batched(ScoreFn model_on_pair, double scale, double rescale) {
  return [model = std::move(model_on_pair), scale, rescale](const at::Tensor& x, const at::Tensor& t) {
    auto out = model(torch::cat({x, x}), torch::cat({t, t}));
    auto halves = out.chunk(2);
    auto guided = halves[0] + scale * (halves[1] - halves[0]);
    return rescale > 0 ? rescale_guidance(guided, halves[1], rescale) : guided;
  };
}

GuidanceFn cfg_guidance(ScoreFn uncond_eps, double scale) {
  return [uncond = std::move(uncond_eps), scale](const at::Tensor& x, const at::Tensor& t, const at::Tensor& eps) {
    return (scale - 1) * (eps - uncond(x, t));
  };
}

}  // namespace dualign::diffusion
