#include "ddo/h_transform.h"

#include <cmath>
#include <memory>

#include "util/error.h"

namespace dualign::ddo {
namespace {

torch::Tensor grad_of(const torch::Tensor& y, const torch::Tensor& x) {
  return torch::autograd::grad({y.sum()}, {x})[0];
}

// Inner timesteps t = τ_0 > τ_1 > ... ≥ 0 (S of them, fewer when t is small), then the clean end.
std::vector<int64_t> inner_timesteps(int64_t t, int64_t steps) {
  std::vector<int64_t> ts;
  for (int64_t s = 0; s < steps; ++s) {
    const auto tau = int64_t(std::llround(double(t) * (1.0 - double(s) / double(steps))));
    if (ts.empty() || tau < ts.back()) ts.push_back(tau);
  }
  return ts;
}

}  // namespace

diffusion::GuidanceFn tweedie_guidance(diffusion::ScoreFn reference, const diffusion::NoiseSchedule& schedule,
                                       PotentialFn f) {
  return [reference = std::move(reference), &schedule, f = std::move(f)](const torch::Tensor& x_t, const torch::Tensor& t,
                                                                         const torch::Tensor&) {
    torch::AutoGradMode grad_on(true);
    auto x = x_t.detach().requires_grad_(true);
    auto x0 = schedule.predict_x0(x, reference(x, t), t);
    auto grad_log_h = grad_of(-f(x0), x);
    return (-schedule.sqrt_one_minus_alpha_bar(t, x_t) * grad_log_h).detach();
  };
}

diffusion::GuidanceFn nested_guidance(diffusion::ScoreFn reference, const diffusion::NoiseSchedule& schedule,
                                      PotentialFn f, const NestedOptions& o) {
  DUALIGN_CHECK(o.chains >= 1 && o.steps >= 1 && o.eta >= 0, "nested h-transform: chains >= 1, steps >= 1, eta >= 0 required");
  auto gen = std::make_shared<at::Generator>(at::make_generator<at::CPUGeneratorImpl>(o.seed));
  return [reference = std::move(reference), &schedule, f = std::move(f), o, gen](
             const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor&) {
    torch::AutoGradMode grad_on(true);
    const int64_t b = x_t.size(0), m = o.chains;
    const int64_t t0 = t[0].item<int64_t>();
    auto x = x_t.detach().requires_grad_(true);
    auto xs = x.repeat_interleave(m, 0);  // [B·M, ...], chain m of row i at i·M + m
    const auto ts = inner_timesteps(t0, o.steps);
    auto t_opts = torch::TensorOptions().dtype(torch::kInt64).device(x_t.device());
    for (size_t i = 0; i < ts.size(); ++i) {
      const double a_t = schedule.alpha_bar(ts[i]);
      const double a_prev = i + 1 < ts.size() ? schedule.alpha_bar(ts[i + 1]) : 1.0;
      auto tt = torch::full({xs.size(0)}, ts[i], t_opts);
      auto out = reference(xs, tt);
      auto x0 = schedule.predict_x0(xs, out, tt);
      auto eps = schedule.predict_eps(xs, out, tt);
      const double var = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev);
      const double sigma = o.eta * std::sqrt(std::max(var, 0.0));
      xs = std::sqrt(a_prev) * x0 + std::sqrt(std::max(1 - a_prev - sigma * sigma, 0.0)) * eps;
      if (sigma > 0) xs = xs + sigma * torch::randn(xs.sizes(), *gen, xs.options());
    }
    auto log_w = (-f(xs)).reshape({b, m});
    auto log_h = torch::logsumexp(log_w, 1) - std::log(double(m));
    auto grad_log_h = grad_of(log_h, x);
    return (-schedule.sqrt_one_minus_alpha_bar(t, x_t) * grad_log_h).detach();
  };
}

torch::Tensor sir_resample(const torch::Tensor& pool, const torch::Tensor& f, int64_t n, uint64_t seed) {
  DUALIGN_CHECK(pool.size(0) == f.numel() && n >= 1, "sir_resample: pool has {} rows but f has {} values (n = {})",
                pool.size(0), f.numel(), n);
  auto probs = torch::softmax(-f.to(torch::kDouble).cpu(), 0);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto idx = torch::multinomial(probs, n, /*replacement=*/true, gen);
  return pool.index_select(0, idx.to(pool.device()));
}

}  // namespace dualign::ddo
