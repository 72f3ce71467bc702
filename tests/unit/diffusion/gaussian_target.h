// Closed-form ε-predictor for data x0 ~ N(mu, sigma² I) under a discrete schedule: the exact model that the
// samplers must turn back into the data distribution.
#pragma once
#include <torch/torch.h>

#include "diffusion/schedule.h"

namespace dualign::diffusion::test_targets {

// ε*(x, t) = sqrt(1-ᾱ) (x - sqrt(ᾱ) mu) / (ᾱ sigma² + 1 - ᾱ), with ᾱ gathered per sample (int or float t).
inline torch::Tensor gaussian_eps(const NoiseSchedule& s, const torch::Tensor& x, const torch::Tensor& t,
                                  const torch::Tensor& mu, double sigma) {
  torch::Tensor a;
  if (t.is_floating_point()) {
    std::vector<double> v;
    auto tc = t.to(torch::kFloat64).contiguous();
    for (int64_t i = 0; i < tc.numel(); ++i) v.push_back(s.alpha_bar_continuous(tc[i].item<double>()));
    a = torch::tensor(v, torch::kFloat64).to(x.dtype()).reshape({-1, 1});
  } else {
    a = s.alphas_cumprod().index({t}).to(x.dtype()).reshape({-1, 1});
  }
  return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * sigma * sigma + 1 - a);
}

}  // namespace dualign::diffusion::test_targets
