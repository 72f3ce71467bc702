#include "methods/path_kl.h"

#include "util/error.h"

namespace dualign::methods {

KlWeighting parse_kl_weighting(const std::string& name, const std::string& key) {
  if (name == "lemma1") return KlWeighting::lemma1;
  if (name == "uniform") return KlWeighting::uniform;
  fail("config key '{}': expected lemma1 or uniform, got '{}'", key, name);
}

double step_sigma(const diffusion::DiscreteSampler& sampler, size_t i) {
  if (!sampler.step_needs_noise(i)) return 0.0;
  torch::NoGradGuard no_grad;
  auto zero = torch::zeros({1, 1}, torch::kFloat64);
  // x = 0 and out = 0 give x0 = ε = 0 for either prediction type, so the step returns σ_i · noise.
  // on the CPU: read from host memory (no .item(), so a GPU training step that calls this makes no host sync)
  return sampler.step(i, zero, zero, {}, torch::ones_like(zero)).contiguous().data_ptr<double>()[0];
}

torch::Tensor step_kl(const diffusion::DiscreteSampler& sampler, const diffusion::NoiseSchedule& schedule, size_t i,
                      const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& out_policy,
                      const torch::Tensor& out_reference, KlWeighting weighting) {
  if (weighting == KlWeighting::uniform) {
    auto eps_p = schedule.predict_eps(x_t, out_policy, t), eps_r = schedule.predict_eps(x_t, out_reference, t);
    return (eps_p - eps_r).to(torch::kFloat32).pow(2).flatten(1).mean(1);
  }
  const double sigma = step_sigma(sampler, i);
  if (sigma <= 1e-12) return torch::zeros({x_t.size(0)}, x_t.options().dtype(torch::kFloat32));
  auto zero = torch::zeros_like(x_t);
  auto mu_p = sampler.step(i, x_t, out_policy, {}, zero);
  auto mu_r = sampler.step(i, x_t, out_reference, {}, zero);
  return (mu_p - mu_r).to(torch::kFloat32).pow(2).flatten(1).sum(1) / (2 * sigma * sigma);
}

}  // namespace dualign::methods
