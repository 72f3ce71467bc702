#include "eval/kl.h"

#include <cmath>

#include "util/error.h"

namespace dualign::eval {
namespace {

// The denoiser with its condition rows bound, as the diffusion core's ScoreFn.
diffusion::ScoreFn bind_condition(const Denoiser& model, const data::Condition& cond) {
  return [&model, cond](const at::Tensor& x, const at::Tensor& t) { return model(x, t, cond); };
}

diffusion::LikelihoodConfig likelihood_config(const PfOdeKlOptions& o) {
  DUALIGN_CHECK(o.steps >= 1 && o.batch_size >= 1, "PF-ODE KL: need steps >= 1 and batch_size >= 1");
  diffusion::LikelihoodConfig c;
  c.time.num_steps = o.steps;
  c.divergence = "exact";
  return c;
}

data::Condition rows(const data::Condition& cond, int64_t start, int64_t len) {
  return (cond.class_id.defined() || cond.text.defined()) ? cond.slice(start, len) : data::Condition{};
}

}  // namespace

torch::Tensor pfode_log_ratio(const Denoiser& policy, const diffusion::NoiseSchedule& policy_schedule,
                              const Denoiser& reference, const diffusion::NoiseSchedule& reference_schedule,
                              const torch::Tensor& x, const data::Condition& cond, const PfOdeKlOptions& o) {
  const auto cfg = likelihood_config(o);
  std::vector<torch::Tensor> out;
  for (int64_t start = 0; start < x.size(0); start += o.batch_size) {
    const int64_t len = std::min(o.batch_size, x.size(0) - start);
    const auto c = rows(cond, start, len);
    auto xb = x.narrow(0, start, len);
    auto lp = diffusion::pf_ode_log_likelihood(policy_schedule, bind_condition(policy, c), xb, cfg);
    auto lr = diffusion::pf_ode_log_likelihood(reference_schedule, bind_condition(reference, c), xb, cfg);
    out.push_back((lp - lr).detach().to(torch::kCPU, torch::kFloat64));
  }
  return torch::cat(out, 0);
}

KlEstimate pfode_kl(const Denoiser& policy, const diffusion::NoiseSchedule& policy_schedule, const Denoiser& reference,
                    const diffusion::NoiseSchedule& reference_schedule, const torch::Tensor& x_T,
                    const data::Condition& cond, const PfOdeKlOptions& o) {
  likelihood_config(o);  // validates
  diffusion::ContinuousConfig time;
  time.num_steps = o.steps;
  std::vector<torch::Tensor> samples;
  for (int64_t start = 0; start < x_T.size(0); start += o.batch_size) {
    const int64_t len = std::min(o.batch_size, x_T.size(0) - start);
    samples.push_back(diffusion::pf_ode_sample(policy_schedule, bind_condition(policy, rows(cond, start, len)),
                                               x_T.narrow(0, start, len), time));
  }
  KlEstimate est;
  auto x = torch::cat(samples, 0);
  est.per_sample = pfode_log_ratio(policy, policy_schedule, reference, reference_schedule, x, cond, o);
  est.kl = mean_se(est.per_sample);
  est.samples = x.detach().to(torch::kCPU, torch::kFloat32);
  return est;
}

KlEstimate path_kl(const Denoiser& policy, const Denoiser& reference, const diffusion::NoiseSchedule& schedule,
                   const diffusion::SamplerConfig& sampler_config, const torch::Tensor& x_T, at::Generator gen,
                   const data::Condition& cond, int64_t batch_size) {
  DUALIGN_CHECK(batch_size >= 1, "path KL: batch_size must be >= 1");
  torch::NoGradGuard no_grad;
  diffusion::DiscreteSampler sampler(schedule, sampler_config);
  const auto& ts = sampler.timesteps();
  bool any_noisy = false;
  for (size_t i = 0; i < ts.size(); ++i) any_noisy = any_noisy || sampler.step_needs_noise(i);
  DUALIGN_CHECK(any_noisy, "path KL needs a stochastic sampler (ddpm, or ddim with eta > 0); got {} with eta {}",
                sampler_config.kind, sampler_config.eta);

  std::vector<torch::Tensor> kls, finals;
  for (int64_t start = 0; start < x_T.size(0); start += batch_size) {
    const int64_t len = std::min(batch_size, x_T.size(0) - start);
    const auto c = rows(cond, start, len);
    auto x = x_T.narrow(0, start, len).clone();
    auto kl = torch::zeros({len}, x.options().dtype(torch::kFloat64));
    auto t_opts = torch::TensorOptions().dtype(torch::kInt64).device(x.device());
    for (size_t i = 0; i < ts.size(); ++i) {
      auto t = torch::full({len}, ts[i], t_opts);
      auto out_policy = policy(x, t, c), out_ref = reference(x, t, c);
      if (!sampler.step_needs_noise(i)) {  // deterministic step: no density, not part of the KL
        x = sampler.step(i, x, out_policy, {}, {});
        continue;
      }
      auto zero = torch::zeros_like(x);
      auto mu_policy = sampler.step(i, x, out_policy, {}, zero);
      auto mu_ref = sampler.step(i, x, out_ref, {}, zero);
      // σ of this step, read from the sampler itself: step(noise = 1) − step(noise = 0) = σ.
      const double sigma = (sampler.step(i, x.narrow(0, 0, 1), out_policy.narrow(0, 0, 1), {}, torch::ones_like(zero.narrow(0, 0, 1))) -
                            mu_policy.narrow(0, 0, 1)).flatten()[0].item<double>();
      auto noise = torch::randn(x.sizes(), gen, x.options().device(torch::kCPU)).to(x.device());
      if (sigma > 1e-12) {
        kl = kl + (mu_policy - mu_ref).to(torch::kFloat64).flatten(1).pow(2).sum(1) / (2 * sigma * sigma);
      }
      x = mu_policy + sigma * noise;
    }
    kls.push_back(kl.cpu());
    finals.push_back(x.detach().to(torch::kCPU, torch::kFloat32));
  }
  KlEstimate est;
  est.per_sample = torch::cat(kls, 0);
  est.kl = mean_se(est.per_sample);
  est.samples = torch::cat(finals, 0);
  return est;
}

}  // namespace dualign::eval
