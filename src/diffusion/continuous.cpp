#include "diffusion/continuous.h"

#include <torch/torch.h>

#include <cmath>

#include "util/error.h"

namespace dualign::diffusion {
namespace {

double resolve_s_max(const NoiseSchedule& s, double s_max) {
  return s_max < 0 ? double(s.num_train_timesteps() - 1) : s_max;
}

at::Tensor time_tensor(const at::Tensor& x, double s) {
  auto dtype = x.is_floating_point() ? x.scalar_type() : torch::kFloat32;
  return torch::full({x.size(0)}, s, torch::TensorOptions().dtype(dtype).device(x.device()));
}

// dx/ds of the probability-flow ODE: -½β (x - ε/σ(s)). β is piecewise constant in s, so a step passes the β
// of the interval it integrates over (evaluating it at a stage on the interval's boundary would pick the
// neighbour's value and cost the integrator its order).
at::Tensor ode_drift(const NoiseSchedule& sch, const ScoreFn& model, const GuidanceFn& guidance,
                     const at::Tensor& x, double s, double beta) {
  const double sigma = std::sqrt(1 - sch.alpha_bar_continuous(s));
  auto eps = continuous_eps(sch, model, guidance, x, s);
  return -0.5 * beta * (x - eps / sigma);
}

at::Tensor standard_normal_log_prob(const at::Tensor& x) {
  auto flat = x.flatten(1);
  return -0.5 * flat.pow(2).sum(1) - 0.5 * double(flat.size(1)) * std::log(2 * M_PI);
}

}  // namespace

at::Tensor continuous_eps(const NoiseSchedule& sch, const ScoreFn& model, const GuidanceFn& guidance,
                          const at::Tensor& x, double s) {
  auto t = time_tensor(x, s);
  auto out = model(x, t);
  at::Tensor eps = out;
  if (sch.predicts_v()) {
    const double a = sch.alpha_bar_continuous(s);
    eps = std::sqrt(a) * out + std::sqrt(1 - a) * x;
  }
  if (guidance) eps = eps + guidance(x, t, eps);
  return eps;
}

at::Tensor reverse_sde_sample(const NoiseSchedule& sch, const ScoreFn& model, at::Tensor x,
                              const ContinuousConfig& cfg, const SampleOptions& options) {
  torch::NoGradGuard no_grad;
  const double s_max = resolve_s_max(sch, cfg.s_max);
  DUALIGN_CHECK(cfg.num_steps >= 1 && s_max > cfg.s_min, "reverse SDE: need num_steps >= 1 and s_max > s_min");
  const double h = (s_max - cfg.s_min) / double(cfg.num_steps);
  for (int64_t i = 0; i < cfg.num_steps; ++i) {
    const double s = s_max - h * double(i);
    const double beta = sch.beta_continuous(s - 0.5 * h), sigma = std::sqrt(1 - sch.alpha_bar_continuous(s));
    auto score = -continuous_eps(sch, model, options.guidance, x, s) / sigma;
    x = x + h * (0.5 * beta * x + beta * score);
    if (i + 1 < cfg.num_steps) {  // no noise on the last step: return the mean
      auto z = options.generator ? torch::randn(x.sizes(), *options.generator, x.options())
                                 : torch::randn(x.sizes(), x.options());
      x = x + std::sqrt(beta * h) * z;
    }
    if (options.trajectory) options.trajectory->push_back(x);
  }
  return x;
}

at::Tensor pf_ode_sample(const NoiseSchedule& sch, const ScoreFn& model, at::Tensor x, const ContinuousConfig& cfg,
                         const SampleOptions& options) {
  torch::NoGradGuard no_grad;
  const double s_max = resolve_s_max(sch, cfg.s_max);
  DUALIGN_CHECK(cfg.num_steps >= 1 && s_max > cfg.s_min, "PF-ODE: need num_steps >= 1 and s_max > s_min");
  const double h = (s_max - cfg.s_min) / double(cfg.num_steps);
  for (int64_t i = 0; i < cfg.num_steps; ++i) {
    const double s = s_max - h * double(i);
    const double beta = sch.beta_continuous(s - 0.5 * h);
    auto d1 = ode_drift(sch, model, options.guidance, x, s, beta);
    auto x_euler = x - h * d1;
    auto d2 = ode_drift(sch, model, options.guidance, x_euler, s - h, beta);
    x = x - 0.5 * h * (d1 + d2);
    if (options.trajectory) options.trajectory->push_back(x);
  }
  return x;
}

at::Tensor pf_ode_log_likelihood(const NoiseSchedule& sch, const ScoreFn& model, const at::Tensor& x0,
                                 const LikelihoodConfig& cfg) {
  const double s_max = resolve_s_max(sch, cfg.time.s_max), s_min = cfg.time.s_min;
  DUALIGN_CHECK(cfg.time.num_steps >= 1 && s_max > s_min, "PF-ODE likelihood: need num_steps >= 1, s_max > s_min");
  DUALIGN_CHECK(cfg.divergence == "exact" || cfg.divergence == "hutchinson",
                "likelihood.divergence: expected exact | hutchinson, got '{}'", cfg.divergence);
  const bool exact = cfg.divergence == "exact";
  const int64_t batch = x0.size(0), dim = x0[0].numel();

  std::vector<at::Tensor> probes;  // Rademacher, fixed along the path (FFJORD)
  if (!exact) {
    DUALIGN_CHECK(cfg.hutchinson_probes >= 1, "likelihood.hutchinson_probes must be >= 1");
    for (int64_t k = 0; k < cfg.hutchinson_probes; ++k) {
      // Drawn on the generator's device (a CPU generator serves a CUDA x too), then moved to x's.
      auto u = cfg.generator ? torch::rand(x0.sizes(), *cfg.generator, x0.options().device(cfg.generator->device()))
                                   .to(x0.device())
                             : torch::rand(x0.sizes(), x0.options());
      probes.push_back((u < 0.5).to(x0.scalar_type()) * 2 - 1);
    }
  }

  // Returns (drift, divergence of the drift [B]) at (x, s).
  auto drift_and_div = [&](const at::Tensor& x_in, double s, double beta) -> std::pair<at::Tensor, at::Tensor> {
    torch::AutoGradMode grad_on(true);
    auto x = x_in.detach().requires_grad_(true);
    auto f = ode_drift(sch, model, cfg.guidance, x, s, beta);
    at::Tensor div = torch::zeros({batch}, x0.options());
    if (exact) {
      auto f_flat = f.reshape({batch, dim});
      for (int64_t i = 0; i < dim; ++i) {
        auto g = torch::autograd::grad({f_flat.select(1, i).sum()}, {x}, {}, /*retain_graph=*/true)[0];
        div = div + g.reshape({batch, dim}).select(1, i);
      }
    } else {
      for (const auto& v : probes) {
        auto g = torch::autograd::grad({(f * v).sum()}, {x}, {}, /*retain_graph=*/true)[0];
        div = div + (g * v).reshape({batch, dim}).sum(1);
      }
      div = div / double(probes.size());
    }
    return {f.detach(), div.detach()};
  };

  // RK4 on (x, Δlog p) forward in s: log p_0(x0) = log p_S(x_S) + ∫ div f ds.
  DUALIGN_CHECK(cfg.time_power >= 1, "PF-ODE likelihood: time_power must be >= 1, got {}", cfg.time_power);
  auto boundary = [&](int64_t i) {
    return s_min + (s_max - s_min) * std::pow(double(i) / double(cfg.time.num_steps), cfg.time_power);
  };
  at::Tensor x = x0.detach(), delta = torch::zeros({batch}, x0.options());
  for (int64_t i = 0; i < cfg.time.num_steps; ++i) {
    const double s = boundary(i), h = boundary(i + 1) - s;
    const double beta = sch.beta_continuous(s + 0.5 * h);
    auto [k1, d1] = drift_and_div(x, s, beta);
    auto [k2, d2] = drift_and_div(x + 0.5 * h * k1, s + 0.5 * h, beta);
    auto [k3, d3] = drift_and_div(x + 0.5 * h * k2, s + 0.5 * h, beta);
    auto [k4, d4] = drift_and_div(x + h * k3, s + h, beta);
    x = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4);
    delta = delta + h / 6.0 * (d1 + 2 * d2 + 2 * d3 + d4);
  }
  auto prior = cfg.prior_log_prob ? cfg.prior_log_prob(x) : standard_normal_log_prob(x);
  return prior.reshape({batch}) + delta;
}

}  // namespace dualign::diffusion
