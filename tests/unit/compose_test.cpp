// src/compose: Lemma 2's point-wise KL against closed forms, the weighted score sum on Gaussians, the exact grid
// product, and the dual loop (one step's direction, checkpoint/resume).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "compose/components.h"
#include "compose/composer.h"
#include "compose/exact_gmm.h"
#include "compose/pointwise_kl.h"
#include "compose/product_sampling.h"
#include "common/class_mlp.h"
#include "common/self_comm.h"
#include "config/config.h"
#include "models/score_model.h"

using namespace dualign;
using namespace dualign::compose;

namespace {

const diffusion::NoiseSchedule& schedule() {
  static diffusion::NoiseSchedule s;  // linear, 1000 steps, 1e-4 .. 0.02 (the configs' default)
  return s;
}

data::Gmm gaussian(std::vector<double> mean, double std) { return data::Gmm({std::move(mean)}, {1.0}, std); }

// KL(N(mp, sp² I) ‖ N(mq, sq² I)) in d dimensions.
double gaussian_kl(const std::vector<double>& mp, double sp, const std::vector<double>& mq, double sq) {
  double d2 = 0;
  for (size_t j = 0; j < mp.size(); ++j) d2 += (mp[j] - mq[j]) * (mp[j] - mq[j]);
  const double r = sp * sp / (sq * sq), d = double(mp.size());
  return 0.5 * d * (r - 1 - std::log(r)) + d2 / (2 * sq * sq);
}

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("dualign_compose_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

}  // namespace

TEST(ComposeKl, WeightsAreUniformInLogSnr) {
  auto w = lemma2_weights(schedule());
  const auto& ab = schedule().alphas_cumprod().to(torch::kFloat64);
  EXPECT_NEAR(w[0].item<double>(), 0.5, 1e-3);  // −½ log(1 − β_0) / β_0
  // Each ω_t is the log-ᾱ increment of step t over 2σ_t², and Σ ω_t is the Riemann sum of ½ d(−log SNR):
  // ½ log(SNR_0 / SNR_{T−1}) plus at most ω_0 for the first step.
  for (int64_t t : {0, 10, 500, 999}) {
    const double beta = schedule().betas()[t].item<double>();
    EXPECT_NEAR(w[t].item<double>() * 2 * (1 - ab[t].item<double>()), -std::log1p(-beta), 1e-6);
  }
  const double snr0 = (ab[0] / (1 - ab[0])).item<double>(), snr_end = (ab[-1] / (1 - ab[-1])).item<double>();
  const double half_log = 0.5 * std::log(snr0 / snr_end);
  EXPECT_GT(w.sum().item<double>(), half_log);
  EXPECT_LT(w.sum().item<double>(), half_log + w[0].item<double>());
}

TEST(ComposeKl, DiscretisedSumMatchesGaussianKlInClosedForm) {
  // Σ_t ω_t E_{p_t}‖Δε‖² with the expectation in closed form: only the O(1/T) discretisation error remains.
  const std::vector<double> mp{0.5, -0.3}, mq{-0.4, 0.6};
  const double sp = 0.6, sq = 1.3, dm2 = 0.81 + 0.81;
  auto w = lemma2_weights(schedule());
  double sum = 0;
  for (int64_t t = 0; t < schedule().num_train_timesteps(); ++t) {
    const double ab = schedule().alpha_bar(t), var = 1 - ab;
    const double vp = ab * sp * sp + var, vq = ab * sq * sq + var;
    const double score_sq = 2 * vp * std::pow(1 / vq - 1 / vp, 2) + ab * dm2 / (vq * vq);
    sum += w[t].item<double>() * var * score_sq;
  }
  const double exact = gaussian_kl(mp, sp, mq, sq);
  EXPECT_NEAR(sum, exact, 0.01 * exact) << "exact KL " << exact;
}

TEST(ComposeKl, MonteCarloEstimatorMatchesGaussianKl) {
  const std::vector<double> mp{0.5, -0.3}, mq{-0.4, 0.6};
  const double sp = 0.6, sq = 1.3;
  auto p = gaussian(mp, sp), q = gaussian(mq, sq);
  std::vector<Component> comps{{"q", gmm_eps(q, schedule())}};
  torch::manual_seed(0);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const int64_t n = 4000;
  auto x0 = p.sample(n, gen);
  auto draws = draw_kl(schedule(), n, 8, {2}, 7);
  auto kl = pointwise_kl(comps, {1.0}, gmm_eps(p, schedule()), schedule(), x0, draws).select(1, 0);
  const double mean = kl.mean().item<double>(), se = kl.std().item<double>() / std::sqrt(double(n));
  const double exact = gaussian_kl(mp, sp, mq, sq);
  EXPECT_NEAR(mean, exact, 4 * se + 0.01 * exact) << "se " << se;
  EXPECT_LT(se, 0.05 * exact);  // stratification in log-SNR keeps the estimate tight
  // Same model on both sides: exactly zero.
  auto zero = pointwise_kl({{"p", gmm_eps(p, schedule())}}, {1.0}, gmm_eps(p, schedule()), schedule(), x0.narrow(0, 0, 50),
                           draws.rows(0, 50));
  EXPECT_EQ(zero.abs().max().item<double>(), 0.0);
}

TEST(ComposeSampling, WeightedSumSamplesTheExactProductOfEqualVarianceGaussians) {
  // With equal variances Σ λ_i s_i is exactly the noised product's score: N(Σ λ_i μ_i, s²) at every level.
  const double s = 0.5;
  std::vector<Component> comps{{"a", gmm_eps(gaussian({-2.0, 1.0}, s), schedule())},
                               {"b", gmm_eps(gaussian({2.0, -1.0}, s), schedule())}};
  const std::vector<double> lambda{0.3, 0.7};
  const int64_t n = 4000;
  auto x_T = initial_noise(n, {2}, 3, {0, n});
  diffusion::SamplerConfig ddim;
  ddim.num_inference_steps = 100;
  auto x = sample_eps(composed_eps(comps, lambda), schedule(), ddim, x_T);
  auto mean = x.mean(0), std = x.std(0);
  const double se = s / std::sqrt(double(n));
  EXPECT_NEAR(mean[0].item<double>(), 0.3 * -2.0 + 0.7 * 2.0, 4 * se);
  EXPECT_NEAR(mean[1].item<double>(), 0.3 * 1.0 + 0.7 * -1.0, 4 * se);
  EXPECT_NEAR(std[0].item<double>(), s, 0.03);
  EXPECT_NEAR(std[1].item<double>(), s, 0.03);
}

TEST(ComposeSampling, AnnealedLangevinCorrectsTheProductOfUnequalGaussians) {
  // q1 = N(−1, 0.4²), q2 = N(1.5, 1.2²) per axis, λ = (½, ½): product N(μ*, s*²), 1/s*² = ½/0.16 + ½/1.44.
  const double s1 = 0.4, s2 = 1.2;
  std::vector<Component> comps{{"a", gmm_eps(gaussian({-1.0, -1.0}, s1), schedule())},
                               {"b", gmm_eps(gaussian({1.5, 1.5}, s2), schedule())}};
  const std::vector<double> lambda{0.5, 0.5};
  const double prec = 0.5 / (s1 * s1) + 0.5 / (s2 * s2), s_star = 1 / std::sqrt(prec);
  const double mu_star = (0.5 * -1.0 / (s1 * s1) + 0.5 * 1.5 / (s2 * s2)) / prec;
  const int64_t n = 3000;
  auto eps = composed_eps(comps, lambda);
  auto x = annealed_langevin(eps, schedule(), {50, 10, 0.02, 1.0}, n, {2}, 5, {0, n}, torch::kCPU);
  auto flat = x.flatten();
  EXPECT_NEAR(flat.mean().item<double>(), mu_star, 0.05);
  EXPECT_NEAR(flat.std().item<double>(), s_star, 0.05 * s_star);
  // Plain DDIM on the same sum is measurably off in the mean (the noised product is not the product of noised).
  diffusion::SamplerConfig ddim;
  auto y = sample_eps(eps, schedule(), ddim, initial_noise(n, {2}, 5, {0, n})).flatten();
  const double ddim_err = std::abs(y.mean().item<double>() - mu_star);
  const double ula_err = std::abs(flat.mean().item<double>() - mu_star);
  EXPECT_LT(ula_err, ddim_err);
}

TEST(ComposeExact, GridProductOfGaussiansMatchesClosedForms) {
  const double s1 = 0.5, s2 = 1.5;
  GridProduct grid({gaussian({-1.0, 0.0}, s1), gaussian({2.0, 1.0}, s2)}, 300);
  const std::vector<double> lambda{0.3, 0.7};
  const double prec = 0.3 / (s1 * s1) + 0.7 / (s2 * s2), s_star = 1 / std::sqrt(prec);
  const std::vector<double> mu{(0.3 * -1.0 / (s1 * s1) + 0.7 * 2.0 / (s2 * s2)) / prec,
                               (0.7 * 1.0 / (s2 * s2)) / prec};
  auto kl = grid.kl(lambda);
  EXPECT_NEAR(kl[0], gaussian_kl(mu, s_star, {-1.0, 0.0}, s1), 1e-3);
  EXPECT_NEAR(kl[1], gaussian_kl(mu, s_star, {2.0, 1.0}, s2), 1e-3);
  // Minimax weights equalise the two KLs.
  auto star = grid.minimax_lambda();
  auto kls = grid.kl(star);
  EXPECT_NEAR(kls[0], kls[1], 1e-3 * kls[0]);
  // Exact samples have the product's moments.
  auto x = grid.sample(lambda, 20000, 3);
  EXPECT_NEAR(x.select(1, 0).mean().item<double>(), mu[0], 0.02);
  EXPECT_NEAR(x.select(1, 0).std().item<double>(), s_star, 0.02);
}

TEST(ComposeExact, KnnEntropyOfAGaussian) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  auto x = gaussian({0.0, 0.0}, 0.7).sample(4000, gen);
  const double exact = 1 + std::log(2 * M_PI * 0.49);  // (d/2) log(2πe s²) for d = 2
  EXPECT_NEAR(knn_entropy(x), exact, 0.05);
}

namespace {

ComposeSettings small_settings(const std::string& ckpt_dir) {
  ComposeSettings s;
  s.rounds = 4;
  s.n = 256;
  s.strata = 6;
  s.sampler.num_inference_steps = 20;
  s.dual.projection = "simplex";
  s.dual.init = {1.0 / 3, 1.0 / 3, 1.0 / 3};
  s.dual.lr = 0.05;
  s.seed = 11;
  s.checkpoint_dir = ckpt_dir;
  return s;
}

// Three models (with two, the surrogate KL̂_i = λ_j² E‖ε_1 − ε_2‖² is balanced at ½, ½ by construction).
std::vector<Component> unbalanced_triple() {
  return {{"sharp", gmm_eps(gaussian({1.0, 0.0}, 0.3), schedule())},
          {"broad", gmm_eps(gaussian({-1.0, 0.5}, 1.5), schedule())},
          {"medium", gmm_eps(gaussian({0.0, -1.0}, 0.7), schedule())}};
}

}  // namespace

TEST(ComposeDual, OneStepMovesWeightTowardTheLargerKl) {
  test::SelfComm comm;
  auto s = small_settings("");
  s.rounds = 1;
  Composer c(unbalanced_triple(), schedule(), {2}, s, comm, torch::kCPU);
  c.run();
  const auto& r = c.history().front();
  const auto big = size_t(std::max_element(r.kl.begin(), r.kl.end()) - r.kl.begin());
  const auto small = size_t(std::min_element(r.kl.begin(), r.kl.end()) - r.kl.begin());
  EXPECT_GT(r.kl[big] - r.kl[small], 4 * (r.kl_se[big] + r.kl_se[small]));  // a real imbalance, not noise
  EXPECT_GT(r.lambda_next[big], 1.0 / 3);
  EXPECT_LT(r.lambda_next[small], 1.0 / 3);
  // The projected step: λ + η KL̂ shifted back onto the simplex (no weight hits 0 at this step size).
  const double mean_kl = (r.kl[0] + r.kl[1] + r.kl[2]) / 3;
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(r.lambda_next[i], 1.0 / 3 + s.dual.lr * (r.kl[i] - mean_kl), 1e-9);
}

TEST(ComposeDual, ResumeContinuesTheSameTrajectory) {
  test::SelfComm comm;
  const auto dir_a = temp_dir("straight"), dir_b = temp_dir("resumed");
  Composer straight(unbalanced_triple(), schedule(), {2}, small_settings(dir_a), comm, torch::kCPU);
  straight.run();
  {
    auto s = small_settings(dir_b);
    s.rounds = 2;
    Composer first(unbalanced_triple(), schedule(), {2}, s, comm, torch::kCPU);
    first.run();
  }
  Composer resumed(unbalanced_triple(), schedule(), {2}, small_settings(dir_b), comm, torch::kCPU);
  EXPECT_EQ(resumed.rounds_done(), 2);
  resumed.run();
  ASSERT_EQ(resumed.history().size(), 4u);
  for (size_t k = 0; k < 4; ++k)
    for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(resumed.history()[k].lambda_next[i], straight.history()[k].lambda_next[i]);
  // The balance improves over the rounds.
  auto spread = [](const std::vector<double>& kl) {
    return *std::max_element(kl.begin(), kl.end()) / *std::min_element(kl.begin(), kl.end());
  };
  const auto& h = straight.history();
  EXPECT_LT(spread(h.back().kl), spread(h.front().kl));
  std::filesystem::remove_all(dir_a);
  std::filesystem::remove_all(dir_b);
}


// A text-conditional stand-in whose output depends on each row's embedding, to check prompt_eps's arithmetic and
// that the [∅; p] rows reach the model in that order (the real UNet path runs in e2e_compose_prompts).
class TextScaled : public models::ScoreModel {
 public:
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const data::Condition& c) override {
    return x * (1 + c.text.mean({1, 2}).view({-1, 1})) + 1e-3 * t.to(x.dtype()).view({-1, 1});
  }
  torch::nn::Module& module() override { return module_; }
  std::string describe() const override { return "text-scaled"; }
  std::vector<int64_t> sample_shape() const override { return {2}; }
  int64_t num_classes() const override { return 0; }
  bool text_conditional() const override { return true; }

 private:
  torch::nn::Module module_;
};

TEST(ComposeConcepts, PromptEpsIsTheGuidedPromptPrediction) {
  TextScaled model;
  torch::NoGradGuard no_grad;
  auto x = torch::randn({5, 2});
  auto t = torch::tensor({0, 10, 200, 500, 999}, torch::kLong);
  auto text = torch::full({1, 3, 4}, 0.5), negative = torch::full({1, 3, 4}, -0.25);
  auto eps_of = [&](const torch::Tensor& e) {
    data::Condition c;
    c.text = e.expand({5, 3, 4});
    return schedule().predict_eps(x, model.forward(x, t, c), t);
  };
  EXPECT_TRUE(torch::equal(prompt_eps(model, schedule(), text, negative, 1.0)(x, t), eps_of(text)));
  auto guided = prompt_eps(model, schedule(), text, negative, 4.0)(x, t);
  EXPECT_LT((guided - (eps_of(negative) + 4.0 * (eps_of(text) - eps_of(negative)))).abs().max().item<double>(), 1e-6);
}

TEST(ComposeConcepts, ClassEpsIsTheGuidedConditionalPrediction) {
  auto model = test::class_mlp();
  torch::NoGradGuard no_grad;
  auto x = torch::randn({6, 2});
  auto t = torch::tensor({0, 10, 200, 500, 800, 999}, torch::kLong);
  auto eps_of = [&](int64_t c) {
    return schedule().predict_eps(x, model->forward(x, t, {torch::full({6}, c, torch::kLong)}), t);
  };
  // w = 1: the conditional prediction alone, bit for bit.
  EXPECT_TRUE(torch::equal(class_eps(*model, schedule(), 1, 1.0)(x, t), eps_of(1)));
  // w = 3: ε_∅ + 3 (ε_c − ε_∅), the null class being num_classes() = 3.
  auto guided = class_eps(*model, schedule(), 2, 3.0)(x, t);
  auto expected = eps_of(3) + 3.0 * (eps_of(2) - eps_of(3));
  EXPECT_LT((guided - expected).abs().max().item<double>(), 1e-6);
  // Different classes are different components.
  EXPECT_GT((class_eps(*model, schedule(), 0, 1.0)(x, t) - eps_of(1)).abs().max().item<double>(), 1e-3);
}
