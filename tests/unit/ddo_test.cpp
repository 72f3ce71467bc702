#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>

#include "ddo/dual_averaging.h"
#include "ddo/h_transform.h"
#include "ddo/objective.h"
#include "ddo/potential.h"
#include "diffusion/sampler.h"
#include "diffusion/schedule.h"

using namespace dualign;
using namespace dualign::ddo;

namespace {

torch::Tensor centred(const torch::Tensor& v) { return v - v.mean(); }

// Exact ε-predictor of data N(mu, sigma² I): ε*(x, t) = sqrt(1-ᾱ)(x - sqrt(ᾱ) mu) / (ᾱ sigma² + 1 - ᾱ).
diffusion::ScoreFn gaussian_eps(const diffusion::NoiseSchedule& s, torch::Tensor mu, double sigma) {
  return [&s, mu, sigma](const torch::Tensor& x, const torch::Tensor& t) {
    auto a = s.alphas_cumprod().index({t.cpu()}).to(x.options()).reshape({-1, 1});
    return (1 - a).sqrt() * (x - a.sqrt() * mu.to(x.options())) / (a * sigma * sigma + 1 - a);
  };
}

}  // namespace

TEST(DdoDualAveraging, TargetRecursionIsExactForRlhf) {
  // g = −r every step: T_{k+1} = −r W_k / (β W_k + β′). The recursion from f_k = T_k reproduces it exactly.
  auto r = torch::randn({16}, torch::kDouble);
  const double beta = 0.7, beta_prime = 0.3;
  auto closed = [&](int64_t k) { const double w = k * (k + 1) / 2.0; return -r * w / (beta * w + beta_prime); };
  auto f = torch::zeros({16}, torch::kDouble);
  for (int64_t k = 1; k <= 4; ++k) {
    f = da_target(f, -r, k, beta, beta_prime);
    EXPECT_TRUE(torch::allclose(f, closed(k), 1e-12, 1e-12)) << "k = " << k;
  }
  // One step with β′ = 0 gives exactly −r/β.
  EXPECT_TRUE(torch::allclose(da_target(torch::zeros({16}, torch::kDouble), -r, 1, beta, 0.0), -r / beta));
}

TEST(DdoDualAveraging, OneRlhfStepFitsMinusRewardOverBeta) {
  torch::manual_seed(0);
  auto x = torch::rand({64, 2}) * 4 - 2;
  auto r = -(x - torch::tensor({1.0f, 0.0f})).pow(2).sum(1);
  auto objective = make_rlhf_objective(r);
  Potential f(PotentialOptions{{2}, "mlp", 32, 2});
  DaOptions o;
  o.beta = 2.0;
  o.beta_prime = 0.0;
  o.iterations = 1;
  o.fit = {2000, 64, 5e-3, 1};
  auto log = run_dual_averaging(f, x, r, *objective, o);
  ASSERT_EQ(log.size(), 2u);
  EXPECT_DOUBLE_EQ(log[0].kl, 0.0);  // q_1 = p_ref
  torch::NoGradGuard no_grad;
  auto fx = f->forward(x).to(torch::kDouble);
  auto want = centred(-r.to(torch::kDouble) / o.beta);
  const double err = (centred(fx) - want).abs().max().item<double>();
  EXPECT_LT(err, 0.05 * want.std().item<double>()) << "max |f − (−r/β)| up to a constant";
  // The tilt's objective and KL match those of the exact potential −r/β.
  EXPECT_NEAR(log[1].objective, objective->value(-r.to(torch::kDouble) / o.beta), 0.02);
}

TEST(DdoObjective, DpoFirstVariationMatchesFiniteDifferences) {
  // Moving f → f + εh moves the tilt by δπ_i = −π_i (h_i − Σ π h) ε, so dF/dε = Σ_i g_i δπ_i / ε.
  // Exact for the empirical measure when every pair is used (partners = N).
  torch::manual_seed(1);
  const int64_t n = 40;
  auto r = torch::randn({n}, torch::kDouble) * 2;
  auto f = torch::randn({n}, torch::kDouble) * 0.5;
  auto h = torch::randn({n}, torch::kDouble);
  auto dpo = make_dpo_objective(r, 1.5, n);
  const double eps = 1e-5;
  const double fd = (dpo->value(f + eps * h) - dpo->value(f - eps * h)) / (2 * eps);
  auto pi = tilt_weights(f);
  auto g = dpo->first_variation(f);
  const double analytic = -(g * pi * (h - (pi * h).sum())).sum().item<double>();
  EXPECT_NEAR(fd, analytic, 1e-6 * std::max(1.0, std::abs(fd)));
  // The unregularised optimum f* = −r/β_d is a stationary point: its first variation vanishes.
  EXPECT_LT(dpo->first_variation(-r / 1.5).abs().max().item<double>(), 1e-12);
}

TEST(DdoObjective, KtoFirstVariationMatchesFiniteDifferences) {
  // The KTO value with the tilt's own KL as reference point; its first variation includes the reference
  // point's (C · ℓ_q). Same finite-difference identity as for DPO; thresholds and class weights non-trivial.
  torch::manual_seed(3);
  const int64_t n = 50;
  auto r = torch::randn({n}, torch::kDouble);
  ObjectiveOptions o;
  o.name = "kto";
  o.kto_beta = 1.7;
  o.kto_threshold = 0.3;
  o.kto_desirable_weight = 1.3;
  o.kto_undesirable_weight = 0.6;
  auto kto = make_objective(o, r);
  for (int trial = 0; trial < 3; ++trial) {
    auto f = torch::randn({n}, torch::kDouble) * 0.7;
    auto h = torch::randn({n}, torch::kDouble);
    const double eps = 1e-5;
    const double fd = (kto->value(f + eps * h) - kto->value(f - eps * h)) / (2 * eps);
    auto pi = tilt_weights(f);
    auto g = kto->first_variation(f);
    const double analytic = -(g * pi * (h - (pi * h).sum())).sum().item<double>();
    EXPECT_NEAR(fd, analytic, 1e-7 * std::max(1.0, std::abs(fd))) << "trial " << trial;
    EXPECT_NEAR(g.mean().item<double>(), 0.0, 1e-12);
  }
  // At the reference (f = 0) every v = 1/2: F = E[λ]/2.
  auto desirable = (r >= 0.3).to(torch::kDouble);
  const double want = 0.5 * (desirable * 1.3 + (1 - desirable) * 0.6).mean().item<double>();
  EXPECT_NEAR(kto->value(torch::zeros({n}, torch::kDouble)), want, 1e-12);
}

TEST(DdoObjective, KtoMedianThresholdAndBadOptions) {
  auto r = torch::arange(10, torch::kDouble);
  ObjectiveOptions o;
  o.name = "kto";
  auto kto = make_objective(o, r);  // median 4.0 (torch's lower median): 6 desirable of 10
  EXPECT_NEAR(kto->value(torch::zeros({10}, torch::kDouble)), 0.5, 1e-12);
  o.kto_threshold = 100;  // nobody desirable
  EXPECT_THROW(make_objective(o, r), std::exception);
  o.name = "ipo";
  EXPECT_THROW(make_objective(o, r), std::exception);
}

TEST(DdoShard, BlocksCoverTheGlobalSetInOrder) {
  for (int world : {1, 2, 3, 5}) {
    int64_t next = 0;
    for (int rank = 0; rank < world; ++rank) {
      auto s = make_shard(1000, 64, rank, world);
      EXPECT_EQ(s.begin, next) << world << " ranks, rank " << rank;
      EXPECT_EQ(s.begin, std::min<int64_t>(s.first_block * 64, 1000));
      EXPECT_EQ(s.counts[size_t(rank)], s.count);
      next += s.count;
    }
    EXPECT_EQ(next, 1000) << world << " ranks";
  }
}

TEST(DdoDualAveraging, ResumeFromASavedStateRepeatsTheRun) {
  // A run's state after its second fit (f_3 with parameters and output buffers, the records) resumed in a
  // fresh potential ends bitwise where the uninterrupted run ends.
  torch::manual_seed(4);
  auto x = torch::rand({64, 2}) * 4 - 2;
  auto r = -(x - torch::tensor({1.0f, 0.0f})).pow(2).sum(1);
  auto objective = make_dpo_objective(r, 1.0, 32);
  DaOptions o;
  o.beta = 1.0;
  o.iterations = 3;
  o.fit = {100, 32, 5e-3, 1};
  Potential full(PotentialOptions{{2}, "mlp", 16, 2});
  DaState saved;
  std::map<std::string, torch::Tensor> saved_state;
  DaHooks hooks;
  hooks.on_step = [&](const DaState& st) {
    if (st.next_k != 3) return;
    saved = st;
    for (const auto& p : full->named_parameters()) saved_state[p.key()] = p.value().detach().clone();
    for (const auto& b : full->named_buffers()) saved_state[b.key()] = b.value().clone();
  };
  auto want = run_dual_averaging(full, x, r, *objective, o, {}, hooks);
  ASSERT_EQ(want.size(), 4u);
  ASSERT_EQ(saved.next_k, 3);
  saved.records = records_from_tensor(records_to_tensor(saved.records));  // through the checkpoint format
  Potential resumed(PotentialOptions{{2}, "mlp", 16, 2});
  {
    torch::NoGradGuard no_grad;
    for (auto& p : resumed->named_parameters()) p.value().copy_(saved_state.at(p.key()));
    for (auto& b : resumed->named_buffers()) b.value().copy_(saved_state.at(b.key()));
  }
  auto got = run_dual_averaging(resumed, x, r, *objective, o, saved);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].k, want[i].k);
    EXPECT_DOUBLE_EQ(got[i].objective, want[i].objective) << "record " << i;
    EXPECT_DOUBLE_EQ(got[i].fit_rmse, want[i].fit_rmse) << "record " << i;
  }
  auto pf = full->parameters(), pr = resumed->parameters();
  for (size_t i = 0; i < pf.size(); ++i) EXPECT_TRUE(torch::equal(pf[i], pr[i])) << "parameter " << i;
}

class DdoHTransform : public ::testing::TestWithParam<std::string> {};

TEST_P(DdoHTransform, LinearPotentialOnGaussianShiftsTheMean) {
  // p_ref = N(mu, σ² I), f(x) = −a·x: q ∝ p_ref e^{a·x} = N(mu + σ² a, σ² I).
  diffusion::NoiseSchedule schedule;
  auto mu = torch::tensor({0.5f, -1.0f});
  const double sigma = 0.5;
  auto a = torch::tensor({2.0f, 0.0f});
  auto ref = gaussian_eps(schedule, mu, sigma);
  PotentialFn f = [a](const torch::Tensor& x) { return -(x * a).sum(1); };
  diffusion::SamplerConfig sc;
  sc.num_inference_steps = 50;
  diffusion::DiscreteSampler sampler(schedule, sc);
  diffusion::SampleOptions opts;
  const bool nested = GetParam() == "nested";
  opts.guidance = nested ? nested_guidance(ref, schedule, f, {4, 4, 1.0, 7}) : tweedie_guidance(ref, schedule, f);
  torch::manual_seed(2);
  const int64_t n = nested ? 1000 : 4000;
  auto x = sampler.sample(ref, torch::randn({n, 2}), opts);
  auto want = mu + sigma * sigma * a;
  auto mean = x.mean(0);
  for (int d = 0; d < 2; ++d) EXPECT_NEAR(mean[d].item<double>(), want[d].item<double>(), 0.06) << "coordinate " << d;
  for (int d = 0; d < 2; ++d) EXPECT_NEAR(x.select(1, d).std().item<double>(), sigma, 0.05) << "coordinate " << d;
}

INSTANTIATE_TEST_SUITE_P(Estimators, DdoHTransform, ::testing::Values("tweedie", "nested"));

TEST(DdoHTransform, SirResamplesByTheTilt) {
  // Pool of two points, f = (0, log 3): probabilities 3/4 and 1/4.
  auto pool = torch::tensor({{0.0f, 0.0f}, {1.0f, 1.0f}});
  auto f = torch::tensor({0.0, std::log(3.0)});
  auto x = sir_resample(pool, f, 20000, 3);
  EXPECT_NEAR(x.select(1, 0).mean().item<double>(), 0.25, 0.01);
}
