#include <gtest/gtest.h>
#include <torch/torch.h>

#include "diffusion/continuous.h"
#include "diffusion/guidance.h"
#include "gaussian_target.h"
#include "gmm_target.h"

using namespace dualign::diffusion;
using test_targets::Gmm;

namespace {
ScoreFn model_of(const NoiseSchedule& s, const Gmm& g) {
  return [&s, g](const torch::Tensor& x, const torch::Tensor& t) { return g.eps(s, x, t); };
}
Gmm single_gaussian() {
  auto f64 = torch::kFloat64;
  return {torch::tensor({1.0}, f64), torch::tensor({{1.0, -0.5}}, f64), torch::tensor({0.7}, f64)};
}
}  // namespace

// PF-ODE log-likelihood with the exact score equals the closed-form log density of the marginal at s = 0.
TEST(PfOdeLikelihood, GaussianAndMixtureExactDivergence) {
  NoiseSchedule s;
  const double a0 = s.alpha_bar_continuous(0.0);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  for (const auto& [name, g] : std::vector<std::pair<std::string, Gmm>>{{"gaussian", single_gaussian()},
                                                                           {"mixture", test_targets::two_d_mixture()}}) {
    auto x = torch::randn({16, 2}, gen, torch::kFloat64) * 1.5;
    auto truth = g.log_prob(x, a0);
    LikelihoodConfig cfg;
    cfg.time.num_steps = 999;  // h = 1: β(s) is constant within each RK4 step, so RK4 keeps its order
    const double aT = s.alpha_bar_continuous(999.0);
    cfg.prior_log_prob = [&](const torch::Tensor& xT) { return g.log_prob(xT, aT); };  // exact terminal density
    auto ll = pf_ode_log_likelihood(s, model_of(s, g), x, cfg);
    double err = (ll - truth).abs().max().item<double>();
    std::printf("%s: max |log p_ode - log p| = %.2e (exact prior), range of log p [%.2f, %.2f]\n", name.c_str(), err,
                truth.min().item<double>(), truth.max().item<double>());
    EXPECT_LT(err, 1e-6) << name;
    // With the standard-normal prior the error is bounded by the prior mismatch (ᾱ_T ≈ 4e-5).
    cfg.prior_log_prob = nullptr;
    double err_std = (pf_ode_log_likelihood(s, model_of(s, g), x, cfg) - truth).abs().max().item<double>();
    std::printf("%s: with N(0, I) prior: %.2e\n", name.c_str(), err_std);
    EXPECT_LT(err_std, 0.05) << name;
  }
}

// Sharp data (σ_data = 0.02, like pixels near the data manifold) make ε/σ(s) stiff at the clean end: uniform
// steps waste the budget at large s, steps at (i/N)^3 put it where the drift changes (the image setting of
// `dualign ddo --policy`).
TEST(PfOdeLikelihood, PowerSpacingResolvesTheCleanEnd) {
  NoiseSchedule s;
  auto f64 = torch::kFloat64;
  Gmm g{torch::tensor({1.0}, f64), torch::tensor({{0.3, -0.2}}, f64), torch::tensor({0.02}, f64)};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  auto x = torch::tensor({{0.3, -0.2}}, f64) + 0.02 * torch::randn({16, 2}, gen, f64);
  auto truth = g.log_prob(x, s.alpha_bar_continuous(0.0));
  LikelihoodConfig cfg;
  cfg.time.num_steps = 50;
  const double aT = s.alpha_bar_continuous(999.0);
  cfg.prior_log_prob = [&](const torch::Tensor& xT) { return g.log_prob(xT, aT); };
  double err_uniform = (pf_ode_log_likelihood(s, model_of(s, g), x, cfg) - truth).abs().max().item<double>();
  cfg.time_power = 3;
  double err_power = (pf_ode_log_likelihood(s, model_of(s, g), x, cfg) - truth).abs().max().item<double>();
  std::printf("50 RK4 steps, max |error|: uniform %.3e, (i/N)^3 %.3e\n", err_uniform, err_power);
  EXPECT_LT(err_power, 0.1 * err_uniform);
  EXPECT_LT(err_power, 1e-2);
  cfg.time_power = 0.5;
  EXPECT_THROW(pf_ode_log_likelihood(s, model_of(s, g), x, cfg), std::exception);
}

// Hutchinson's estimator is unbiased: over many independent probes (one per replica of the same point) the
// mean log-likelihood agrees with the exact-divergence value within its standard error.
TEST(PfOdeLikelihood, HutchinsonIsUnbiasedInEightDimensions) {
  NoiseSchedule s;
  auto f64 = torch::kFloat64;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  Gmm g{torch::tensor({0.6, 0.4}, f64), 0.7 * torch::randn({2, 8}, gen, f64), torch::tensor({0.5, 0.8}, f64)};
  auto x = torch::randn({1, 8}, gen, f64);
  LikelihoodConfig cfg;
  cfg.time.num_steps = 100;
  double exact = pf_ode_log_likelihood(s, model_of(s, g), x, cfg).item<double>();
  double truth = g.log_prob(x, s.alpha_bar_continuous(0.0)).item<double>();
  cfg.divergence = "hutchinson";
  cfg.generator = gen;
  const int64_t reps = 256;
  auto est = pf_ode_log_likelihood(s, model_of(s, g), x.expand({reps, 8}).contiguous(), cfg);
  double mean = est.mean().item<double>(), se = est.std().item<double>() / std::sqrt(double(reps));
  std::printf("exact div: %.4f (closed form %.4f); hutchinson: %.4f ± %.4f (per-probe std %.3f)\n", exact, truth,
              mean, se, est.std().item<double>());
  EXPECT_LT(std::abs(mean - exact), 4 * se + 1e-3);
  EXPECT_GT(est.std().item<double>(), 1e-3);  // probes really differ
  EXPECT_LT(se, 0.2);
}

// Reverse SDE and PF-ODE with the exact mixture score reproduce the mixture's mean and variance.
TEST(ContinuousSamplers, RecoverMixtureMoments) {
  NoiseSchedule s;
  auto g = test_targets::two_d_mixture();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const int64_t n = 8000;
  auto xT = torch::randn({n, 2}, gen, torch::kFloat64);
  ContinuousConfig cfg{.num_steps = 400};
  auto sde = reverse_sde_sample(s, model_of(s, g), xT, cfg, {.generator = gen});
  auto ode = pf_ode_sample(s, model_of(s, g), xT, {.num_steps = 200});
  for (const auto& [name, x] : {std::pair{"sde", sde}, std::pair{"ode", ode}}) {
    double mean_err = (x.mean(0) - g.mean()).abs().max().item<double>();
    double var_err = (x.var(0) / g.var() - 1).abs().max().item<double>();
    std::printf("%s: mean err %.3f, var rel err %.3f\n", name, mean_err, var_err);
    // MC: std of the mean ≈ 1.2/sqrt(8000) = 0.013, of the variance ≈ 2-3%.
    EXPECT_LT(mean_err, 0.05) << name;
    EXPECT_LT(var_err, 0.08) << name;
  }
  // mode occupancy: fraction of samples nearest each component mean matches the weights
  auto d = (ode.unsqueeze(1) - g.means.unsqueeze(0)).pow(2).sum(2);
  auto nearest = d.argmin(1);
  for (int k = 0; k < 3; ++k) {
    double frac = (nearest == k).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(frac, g.weights[k].item<double>(), 0.04) << "component " << k;
  }
}

// CFG on two equal-variance Gaussians is exactly the Gaussian with mean mu_u + w (mu_c - mu_u).
TEST(Guidance, ClassifierFreeGuidanceExtrapolatesMeans) {
  NoiseSchedule s;
  const double sigma = 0.5, w = 3.0;
  auto mu_c = torch::tensor({1.0, 0.0}, torch::kFloat64), mu_u = torch::tensor({0.0, 0.5}, torch::kFloat64);
  ScoreFn cond = [&](const torch::Tensor& x, const torch::Tensor& t) { return test_targets::gaussian_eps(s, x, t, mu_c, sigma); };
  ScoreFn uncond = [&](const torch::Tensor& x, const torch::Tensor& t) { return test_targets::gaussian_eps(s, x, t, mu_u, sigma); };
  auto expect = mu_u + w * (mu_c - mu_u);
  DiscreteSampler sampler(s, {.kind = "ddim", .num_inference_steps = 100});
  auto xT = torch::randn({4000, 2}, at::make_generator<at::CPUGeneratorImpl>(1), torch::kFloat64);
  auto a = sampler.sample(classifier_free_guidance(cond, uncond, w), xT);
  auto b = sampler.sample(cond, xT, {.guidance = cfg_guidance(uncond, w)});
  ScoreFn pair = [&](const torch::Tensor& x, const torch::Tensor& t) {
    auto h = x.chunk(2);
    auto th = t.chunk(2);
    return torch::cat({uncond(h[0], th[0]), cond(h[1], th[1])});
  };
  auto c = sampler.sample(classifier_free_guidance_batched(pair, w), xT);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-9);
  EXPECT_LT((a - c).abs().max().item<double>(), 1e-12);
  EXPECT_LT((a.mean(0) - expect).abs().max().item<double>(), 0.05);
}
