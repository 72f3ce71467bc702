// Constrained alignment: the path-KL estimator (0 at the reference; the Lemma 1 closed form on Gaussian data for
// DDIM and DDPM; the unweighted variant), reward gradients only through the last K sampler steps, the method's
// loss and dual step (λ rises for a violated constraint, falls to 0 for a slack one, fixed when dual.lr = 0),
// draws that do not depend on how the global batch is split, and config errors that name the key.
#include <gtest/gtest.h>

#include <cmath>

#include "common/method_fixture.h"
#include "methods/method.h"
#include "methods/path_kl.h"
#include "methods/reward_backprop.h"
#include "util/error.h"

namespace dualign::methods {
namespace {

// ε-prediction of the exact score of Gaussian data N(m, s² I): E[ε | x_t] = √(1−ᾱ)(x_t − √ᾱ m)/(ᾱ s² + 1 − ᾱ).
diffusion::ScoreFn gaussian_eps(const diffusion::NoiseSchedule& schedule, std::vector<double> m, double s) {
  return [&schedule, m, s](const torch::Tensor& x, const torch::Tensor& t) {
    auto a = schedule.alphas_cumprod().index_select(0, t.cpu()).to(torch::kFloat64).unsqueeze(1);
    auto mean = torch::tensor(m, torch::kFloat64).unsqueeze(0);
    auto eps = (1 - a).sqrt() * (x.to(torch::kFloat64) - a.sqrt() * mean) / (a * s * s + 1 - a);
    return eps.to(torch::kFloat32);
  };
}

std::function<torch::Tensor(size_t)> seeded_noise(std::vector<int64_t> shape, uint64_t seed) {
  return [shape, seed](size_t i) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + i);
    return at::normal(0.0, 1.0, shape, gen);
  };
}

// Σ_i d_i²/(2σ_i²) ‖Δε_i‖² for two Gaussians that differ by their mean (Δε does not depend on x_t), with the
// per-step mean coefficient d_i and variance σ_i² written out from the DDIM / DDPM update rules.
double closed_form_path_kl(const diffusion::NoiseSchedule& schedule, const diffusion::DiscreteSampler& sampler,
                           double mean_gap_sq, double s) {
  const auto& c = sampler.config();
  double kl = 0;
  for (size_t i = 0; i < sampler.timesteps().size(); ++i) {
    const int64_t t = sampler.timesteps()[i], prev = sampler.prev_timestep(i);
    const double a = schedule.alpha_bar(t), a_prev = prev >= 0 ? schedule.alpha_bar(prev) : 1.0;
    double d, var;
    if (c.kind == "ddim") {
      var = c.eta * c.eta * (1 - a_prev) / (1 - a) * (1 - a / a_prev);
      d = std::sqrt(std::max(1 - a_prev - var, 0.0)) - std::sqrt(a_prev) * std::sqrt(1 - a) / std::sqrt(a);
    } else {
      const double beta = 1 - a / a_prev;
      var = t > 0 ? (1 - a_prev) / (1 - a) * beta : 0.0;
      d = -std::sqrt(a_prev) * beta / (1 - a) * std::sqrt(1 - a) / std::sqrt(a);  // c_x0 · (−√(1−ᾱ)/√ᾱ)
    }
    if (var <= 1e-12) continue;
    const double gap_eps_sq = (1 - a) * a * mean_gap_sq / std::pow(a * s * s + 1 - a, 2);
    kl += d * d * gap_eps_sq / (2 * var);
  }
  return kl;
}

TEST(PathKl, IsZeroWhenThePolicyIsTheReference) {
  diffusion::NoiseSchedule schedule;
  diffusion::DiscreteSampler sampler(schedule, {.kind = "ddim", .num_inference_steps = 10, .eta = 1.0});
  auto f = gaussian_eps(schedule, {1.0, -0.5}, 0.7);
  for (auto w : {KlWeighting::lemma1, KlWeighting::uniform}) {
    auto roll = rollout(sampler, schedule, f, f, torch::randn({64, 2}), seeded_noise({64, 2}, 1),
                        {.grad_steps = 3, .weighting = w});
    EXPECT_EQ(roll.kl.abs().max().item<double>(), 0.0);
  }
}

TEST(PathKl, MatchesTheLemma1ClosedFormOnGaussians) {
  diffusion::NoiseSchedule schedule;
  const double s = 0.6;
  auto policy = gaussian_eps(schedule, {1.0, 0.5}, s), reference = gaussian_eps(schedule, {0.0, 0.0}, s);
  for (const diffusion::SamplerConfig& c : {diffusion::SamplerConfig{.kind = "ddim", .num_inference_steps = 20, .eta = 1.0},
                                             diffusion::SamplerConfig{.kind = "ddim", .num_inference_steps = 7, .eta = 0.5},
                                             diffusion::SamplerConfig{.kind = "ddpm", .num_inference_steps = 15}}) {
    diffusion::DiscreteSampler sampler(schedule, c);
    auto roll = rollout(sampler, schedule, policy, reference, torch::randn({32, 2}), seeded_noise({32, 2}, 5),
                        {.grad_steps = 1});
    const double expected = closed_form_path_kl(schedule, sampler, 1.25, s);
    EXPECT_GT(expected, 0.1) << c.kind;
    // Δε is the same for every x_t, so every trajectory gives the closed form (float32 model outputs).
    EXPECT_NEAR(roll.kl.min().item<double>(), expected, 2e-3 * expected) << c.kind << " eta " << c.eta;
    EXPECT_NEAR(roll.kl.max().item<double>(), expected, 2e-3 * expected) << c.kind << " eta " << c.eta;
  }
}

TEST(PathKl, UniformWeightingIsTheUnweightedSumOfEpsGaps) {
  diffusion::NoiseSchedule schedule;
  diffusion::DiscreteSampler sampler(schedule, {.kind = "ddim", .num_inference_steps = 10, .eta = 0.0});
  const double s = 0.6;
  auto roll = rollout(sampler, schedule, gaussian_eps(schedule, {1.0, 0.5}, s), gaussian_eps(schedule, {0, 0}, s),
                      torch::randn({8, 2}), seeded_noise({8, 2}, 2), {.grad_steps = 1, .weighting = KlWeighting::uniform});
  double expected = 0;
  for (int64_t t : sampler.timesteps()) {
    const double a = schedule.alpha_bar(t);
    expected += (1 - a) * a * 1.25 / std::pow(a * s * s + 1 - a, 2) / 2;  // mean over the 2 coordinates
  }
  EXPECT_NEAR(roll.kl[0].item<double>(), expected, 2e-3 * expected);
}

TEST(PathKl, ParsesWeightingsAndReadsSigmaFromTheSampler) {
  EXPECT_THROW(parse_kl_weighting("lemma", "method.kl.weighting"), Error);
  diffusion::NoiseSchedule schedule;
  diffusion::DiscreteSampler ddim(schedule, {.kind = "ddim", .num_inference_steps = 10, .eta = 1.0});
  EXPECT_EQ(step_sigma(ddim, 9), 0.0);  // the last DDIM step (to ᾱ = 1) is deterministic
  EXPECT_GT(step_sigma(ddim, 0), 0.0);
}

// Per-step additive biases on the policy's output: their gradients say which steps a loss reaches.
struct BiasedPolicy {
  torch::nn::Linear net{torch::nn::LinearOptions(3, 2)};
  std::vector<torch::Tensor> bias;
  std::vector<int64_t> timesteps;
  explicit BiasedPolicy(const diffusion::DiscreteSampler& sampler) : timesteps(sampler.timesteps()) {
    torch::manual_seed(0);
    net = torch::nn::Linear(torch::nn::LinearOptions(3, 2));
    for (size_t i = 0; i < timesteps.size(); ++i) bias.push_back(torch::zeros({2}, torch::requires_grad()));
  }
  diffusion::ScoreFn fn() {
    return [this](const torch::Tensor& x, const torch::Tensor& t) {
      const auto i = std::find(timesteps.begin(), timesteps.end(), t[0].item<int64_t>()) - timesteps.begin();
      auto in = torch::cat({x, t.to(torch::kFloat32).unsqueeze(1) / 1000}, 1);
      return net->forward(in) + bias[static_cast<size_t>(i)];
    };
  }
  std::vector<bool> reached() const {
    std::vector<bool> out;
    for (const auto& b : bias) out.push_back(b.grad().defined() && b.grad().abs().sum().item<double>() > 0);
    return out;
  }
};

TEST(RewardBackprop, RewardGradientsReachOnlyTheLastKSteps) {
  diffusion::NoiseSchedule schedule;
  diffusion::DiscreteSampler sampler(schedule, {.kind = "ddim", .num_inference_steps = 10, .eta = 1.0});
  for (int64_t k : {1, 3, 10}) {
    BiasedPolicy p(sampler);
    auto roll = rollout(sampler, schedule, p.fn(), p.fn(), torch::randn({16, 2}), seeded_noise({16, 2}, 3),
                        {.grad_steps = k, .with_kl = false});
    (-(roll.x0 - torch::tensor({2.5, 0.0})).pow(2).sum()).backward();
    auto reached = p.reached();
    for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(reached[static_cast<size_t>(i)], i >= 10 - k) << "K " << k << " step " << i;
  }
}

TEST(RewardBackprop, KlGradientsReachEveryStochasticStepOnlyWithAllSteps) {
  diffusion::NoiseSchedule schedule;
  diffusion::DiscreteSampler sampler(schedule, {.kind = "ddim", .num_inference_steps = 10, .eta = 1.0});
  auto reference = gaussian_eps(schedule, {0, 0}, 0.6);
  for (bool all : {true, false}) {
    BiasedPolicy p(sampler);
    auto roll = rollout(sampler, schedule, p.fn(), reference, torch::randn({16, 2}), seeded_noise({16, 2}, 3),
                        {.grad_steps = 2, .kl_all_steps = all});
    roll.kl.sum().backward();
    auto reached = p.reached();
    // Step 9 is deterministic (no KL term); the window is steps 8, 9 (step 9 reaches nothing: x_0 is not in the KL).
    for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(reached[static_cast<size_t>(i)], all || i >= 8) << "all " << all << " step " << i;
    EXPECT_FALSE(reached[9]);
  }
}

// ---- the method ------------------------------------------------------------------------------------------------

const char* kModel = "model: {kind: mlp, data_dim: 2, hidden: 32, depth: 2}\n";
const char* kMethod = R"(
method:
  name: constrained
  sampler: {kind: ddim, steps: 8, eta: 1.0}
  grad_steps: 3
  constraints:
    right: {reward: {kind: gmm_target, target: [2.5, 0.0]}, threshold: -1.0}
    top: {reward: {kind: gmm_target, target: [0.0, 2.5]}, threshold: -1.0e6}
  dual: {init: 0.5, lr: 0.01}
)";

// A world of one process (the multi-rank path is covered by the e2e test under mpirun).
struct Fixture : test::MethodFixture {
  explicit Fixture(const std::string& method_yaml = kMethod) : MethodFixture(kModel, method_yaml) {}
};
using test::stat;

data::Batch self_batch(int64_t global, int64_t offset, int64_t local, uint64_t seed = 11) {
  data::Batch b;
  b.x = torch::empty({local, 0});
  b.global_size = global;
  b.offset = offset;
  b.seed = seed;
  return b;
}

TEST(Constrained, AtTheReferenceTheLossIsTheWeightedSlackAndLambdaMovesBySlack) {
  Fixture f;
  auto m = f.method();
  auto out = m->loss(*f.policy, self_batch(64, 0, 64));
  EXPECT_NEAR(stat(out, "kl_sum"), 0.0, 1e-9);  // policy == reference at the start
  const double r_right = stat(out, "right_reward_sum") / 64, r_top = stat(out, "top_reward_sum") / 64;
  EXPECT_NEAR(stat(out, "right_slack_sum") / 64, -1.0 - r_right, 1e-4);
  const double expected_loss = 0.5 * (-1.0 - r_right) + 0.5 * (-1.0e6 - r_top);
  EXPECT_NEAR(out.loss.item<double>(), expected_loss, 1e-6 * std::abs(expected_loss));  // float32 loss
  auto logged = m->end_step(1, f.comm);
  // right is violated (the untrained MLP's samples are far from [2.5, 0]): λ rises by lr · slack; top is slack.
  EXPECT_NEAR(logged.at("dual/right/lambda"), 0.5 + 0.01 * (-1.0 - r_right), 1e-6);
  EXPECT_GT(logged.at("dual/right/lambda"), 0.5);
  EXPECT_NEAR(logged.at("dual/top/lambda"), std::max(0.0, 0.5 + 0.01 * (-1.0e6 - r_top)), 1e-6);
  EXPECT_EQ(logged.at("dual/top/lambda"), 0.0);
  auto state = m->state();
  EXPECT_DOUBLE_EQ(state.at("lambda")[0].item<double>(), logged.at("dual/right/lambda"));
}

// Image constraints on a LoRA UNet: the reference is the policy's frozen base (LoRA disabled), so the path KL is
// exactly 0 at the start; the saturation and local-contrast rewards pass gradients to the adapters only.
TEST(Constrained, LoraPolicyWithImageStatisticConstraints) {
  const std::string unet =
      "model: {kind: unet, sample_size: 8, in_channels: 3, out_channels: 3, block_out_channels: [16, 32],\n"
      "        down_block_types: [CrossAttnDownBlock2D, DownBlock2D], up_block_types: [UpBlock2D, CrossAttnUpBlock2D],\n"
      "        layers_per_block: 1, norm_num_groups: 8, cross_attention_dim: 12, attention_head_dim: 4,\n"
      "        gradient_checkpointing: true, lora: {rank: 2}}\n";
  const std::string method = R"(
method:
  name: constrained
  sampler: {kind: ddim, steps: 4, eta: 1.0}
  grad_steps: 2
  constraints:
    saturation: {reward: {kind: saturation, zscore: {mean: 0.3, std: 0.1}}, threshold: 0.5}
    contrast: {reward: {kind: local_contrast}, threshold: 0.2}
  dual: {init: 1.0, lr: 0.01}
)";
  test::MethodFixture f(unet, method);
  auto ctx = f.context();
  ctx.build_reference = nullptr;  // a LoRA policy never builds a second UNet
  auto m = make_method(f.cfg.section("method"), ctx);
  auto b = self_batch(3, 0, 3);
  b.cond.text = torch::randn({3, 2, 12});
  auto out = m->loss(*f.policy, b);
  EXPECT_EQ(stat(out, "kl_sum"), 0.0);
  out.loss.backward();
  double grad = 0;
  for (const auto& p : f.policy->parameters()) grad += p.grad().defined() ? p.grad().abs().sum().item<double>() : 0.0;
  EXPECT_GT(grad, 0.0);  // lora_B starts at 0, but its gradient does not
}

TEST(Constrained, FixedWeightsWhenTheDualLearningRateIsZero) {
  std::string yaml = kMethod;
  yaml.replace(yaml.find("lr: 0.01"), 8, "lr: 0.0");
  Fixture f(yaml);
  auto m = f.method();
  m->loss(*f.policy, self_batch(32, 0, 32));
  auto logged = m->end_step(1, f.comm);
  EXPECT_EQ(logged.at("dual/right/lambda"), 0.5);
  EXPECT_EQ(logged.at("dual/top/lambda"), 0.5);
}

TEST(Constrained, DrawsDoNotDependOnHowTheGlobalBatchIsSplit) {
  Fixture f;
  auto m = f.method();
  auto whole = m->loss(*f.policy, self_batch(48, 0, 48));
  auto first = m->loss(*f.policy, self_batch(48, 0, 16)), rest = m->loss(*f.policy, self_batch(48, 16, 32));
  for (const char* k : {"right_reward_sum", "top_slack_sum"})
    EXPECT_NEAR(stat(first, k) + stat(rest, k), stat(whole, k), 1e-3 * std::abs(stat(whole, k))) << k;
}

TEST(Constrained, AFewStepsRaiseAHeavilyWeightedRewardAndTheKlGrows) {
  std::string yaml = kMethod;
  yaml.replace(yaml.find("init: 0.5"), 9, "init: 5.0");
  Fixture f(yaml);
  auto m = f.method();
  torch::optim::Adam opt(f.policy->parameters(), torch::optim::AdamOptions(3e-3));
  double first = 0, last = 0, kl = 0;
  for (int step = 0; step < 30; ++step) {
    opt.zero_grad();
    auto out = m->loss(*f.policy, self_batch(64, 0, 64, 100 + step));
    out.loss.backward();
    opt.step();
    (step == 0 ? first : last) = stat(out, "right_reward_sum") / 64;
    kl = stat(out, "kl_sum") / 64;
  }
  EXPECT_GT(last, first + 1.0);
  EXPECT_GT(kl, 0.01);
}

TEST(Constrained, BadConfigErrorsNameTheKey) {
  auto error_of = [](const std::string& yaml) { return test::method_error(kModel, yaml); };
  auto with = [](std::string from, std::string to) {
    std::string y = kMethod;
    y.replace(y.find(from), from.size(), to);
    return y;
  };
  EXPECT_NE(error_of(with("grad_steps: 3", "grad_steps: 9")).find("method.grad_steps"), std::string::npos);
  EXPECT_NE(error_of(with("threshold: -1.0", "treshold: -1.0")).find("method.constraints.right.threshold"),
            std::string::npos);
  EXPECT_NE(error_of(with("threshold: -1.0}", "threshold: -1.0, normalise: mean}")).find("method.constraints.right.normalise"),
            std::string::npos);
  EXPECT_NE(error_of(with("eta: 1.0", "eta: 0.0")).find("method.kl.weighting"), std::string::npos);
  EXPECT_NE(error_of(with("kind: gmm_target, target: [2.5", "kind: gmm_targt, target: [2.5")).find("method.constraints.right.reward.kind"),
            std::string::npos);
  EXPECT_NE(error_of(with("lr: 0.01", "lr: -1")).find("method.dual.lr"), std::string::npos);
  EXPECT_NE(error_of(with("lr: 0.01", "lr: 0.01, controller: pid")).find("method.dual.controller"), std::string::npos);
  EXPECT_NE(error_of(with("lr: 0.01", "lr: 0.01, controller: nupi, nu: 1.0")).find("method.dual.nu"), std::string::npos);
  EXPECT_NE(error_of(with("lr: 0.01", "lr: 0.01, kp: 1.0")).find("method.dual.kp"), std::string::npos);  // ascent: unknown key
  EXPECT_NE(error_of("method: {name: constrained, grad_steps: 1, constraints: {}, dual: {}}\n").find("method.constraints"),
            std::string::npos);
}

TEST(Constrained, NormalizationUsesReferenceStatistics) {
  std::string yaml = kMethod;
  yaml.replace(yaml.find("threshold: -1.0}"), 16, "threshold: 0.5, normalize: mean_std}");
  Fixture f(yaml);
  auto m = f.method();
  auto state = m->state();
  const double mean = state.at("norm_mean")[0].item<double>(), sd = state.at("norm_std")[0].item<double>();
  EXPECT_LT(mean, -1.0);  // reference samples are far from [2.5, 0]
  EXPECT_GT(sd, 0.0);
  EXPECT_EQ(state.at("norm_mean")[1].item<double>(), 0.0);  // top is not normalised
  auto out = m->loss(*f.policy, self_batch(64, 0, 64));
  const double r = stat(out, "right_reward_sum") / 64;
  EXPECT_NEAR(stat(out, "right_slack_sum") / 64, 0.5 - (r - mean) / sd, 1e-4);
}

}  // namespace
}  // namespace dualign::methods
