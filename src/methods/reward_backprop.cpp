#include "methods/reward_backprop.h"

#include "util/error.h"

namespace dualign::methods {

Rollout rollout(const diffusion::DiscreteSampler& sampler, const diffusion::NoiseSchedule& schedule,
                const diffusion::ScoreFn& policy, const diffusion::ScoreFn& reference, const torch::Tensor& x_T,
                const std::function<torch::Tensor(size_t)>& noise, const RolloutOptions& options) {
  const auto& ts = sampler.timesteps();
  const auto n = static_cast<int64_t>(ts.size());
  DUALIGN_CHECK(options.grad_steps >= 1 && options.grad_steps <= n,
                "reward back-propagation: grad_steps must be in [1, {}] (the sampler's steps), got {}", n,
                options.grad_steps);
  const int64_t first_in_window = n - options.grad_steps;
  const bool grad_enabled = torch::GradMode::is_enabled();  // a caller's no-grad (evaluation) wins

  auto x = x_T;
  auto kl = torch::zeros({x_T.size(0)}, x_T.options().dtype(torch::kFloat32));
  auto t_opts = torch::TensorOptions().dtype(torch::kInt64).device(x_T.device());
  for (int64_t i = 0; i < n; ++i) {
    const auto step = static_cast<size_t>(i);
    const bool in_window = i >= first_in_window;
    if (!in_window) x = x.detach();
    auto t = torch::full({x.size(0)}, ts[step], t_opts);

    torch::Tensor out_policy, out_reference;
    {
      torch::AutoGradMode mode(grad_enabled && (in_window || (options.with_kl && options.kl_all_steps)));
      out_policy = policy(x, t);
    }
    if (options.with_kl) {
      {
        torch::AutoGradMode mode(grad_enabled && in_window);  // frozen weights: only x_t can carry a gradient
        out_reference = reference(x, t);
      }
      kl = kl + step_kl(sampler, schedule, step, x, t, out_policy, out_reference, options.weighting);
    }
    torch::Tensor step_noise;
    if (sampler.step_needs_noise(step)) step_noise = noise(step);
    x = sampler.step(step, x, in_window ? out_policy : out_policy.detach(), {}, step_noise);
  }
  return {x, kl};
}

}  // namespace dualign::methods
