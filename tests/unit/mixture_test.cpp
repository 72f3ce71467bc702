// Mixture composition (OR): the per-sample weights give Σ λ_g ℓ_g (exactly per batch, or in expectation), the
// ELBO weights recover a Gaussian entropy difference, the method's loss is the λ-weighted ε-MSE, a dual step
// raises λ of the group with the larger loss, λ round-trips through state(), and bad configs fail clearly.
#include <gtest/gtest.h>

#include <cmath>

#include "common/method_fixture.h"
#include "methods/method.h"
#include "methods/mixture.h"

namespace dualign::methods {
namespace {

const char* kModel = "model: {kind: mlp, data_dim: 2, hidden: 32, depth: 2}\n";

std::string method_yaml(const std::string& extra = "") {
  return "method: {name: mixture, groups: 2, group_frequency: [0.5, 0.5], " + extra +
         " dual: {projection: simplex, lr: 0.1, every: 1}}\n";
}

// A world of one process: collectives leave the tensors as they are.
struct Fixture : test::MethodFixture {
  explicit Fixture(const std::string& method_yaml) : MethodFixture(kModel, method_yaml) {}
};

double lambda_of(Method& m, int64_t g) { return m.state().at("lambda")[g].item<double>(); }

// mixture_weights from host numbers (the method passes its device tensors).
torch::Tensor weights(const std::vector<double>& lambda, const torch::Tensor& group, const std::string& weighting,
                      const std::vector<double>& frequency, const std::vector<double>& counts, int64_t global_size) {
  return mixture_weights(torch::tensor(lambda, torch::kFloat64), group, weighting, frequency,
                         counts.empty() ? torch::Tensor() : torch::tensor(counts, torch::kFloat64), global_size);
}

TEST(MixtureWeights, BatchWeightingIsTheLambdaWeightedGroupMeanOnEveryBatch) {
  auto group = torch::tensor({0, 0, 0, 1, 2, 2}, torch::kInt64);
  auto loss = torch::tensor({1.0, 2.0, 6.0, 5.0, 0.5, 1.5}, torch::kFloat32);
  std::vector<double> lambda{0.2, 0.5, 0.3};
  auto w = weights(lambda, group, "batch", {}, {3, 1, 2}, 6);
  const double expected = 0.2 * 3.0 + 0.5 * 5.0 + 0.3 * 1.0;  // λ_g · mean of group g
  EXPECT_NEAR((w * loss).sum().item<double>(), expected, 1e-6);
}

TEST(MixtureWeights, FrequencyWeightingIsExactWhenTheBatchHasTheDataShares) {
  // 10 rows with shares (0.5, 0.2, 0.3) = the configured frequencies.
  auto group = torch::tensor({0, 0, 0, 0, 0, 1, 1, 2, 2, 2}, torch::kInt64);
  auto loss = torch::rand({10});
  std::vector<double> lambda{0.1, 0.6, 0.3};
  auto w = weights(lambda, group, "frequency", {0.5, 0.2, 0.3}, {}, 10);
  double expected = 0;
  for (int64_t g = 0; g < 3; ++g) expected += lambda[g] * loss.index({group == g}).mean().item<double>();
  EXPECT_NEAR((w * loss).sum().item<double>(), expected, 1e-6);
  // λ = frequencies: plain SFT, every row weighs 1/B.
  auto sft = weights({0.5, 0.2, 0.3}, group, "frequency", {0.5, 0.2, 0.3}, {}, 10);
  EXPECT_TRUE(torch::allclose(sft, torch::full({10}, 0.1f)));
}

TEST(MixtureWeights, FrequencyWeightingIsUnbiasedForARareGroupWhereBatchWeightingIsNot) {
  // Group 1 has share 2% in batches of 32: absent from about half of them. Per-group losses are constants
  // (ℓ_0 = 1, ℓ_1 = 3) so the estimate's mean must be λ_0 + 3 λ_1 = 2 for λ = (1/2, 1/2).
  torch::manual_seed(0);
  const std::vector<double> p{0.98, 0.02}, lambda{0.5, 0.5};
  double freq_mean = 0, batch_mean = 0;
  const int trials = 20000;
  for (int i = 0; i < trials; ++i) {
    auto group = (torch::rand({32}) < p[1]).to(torch::kInt64);
    auto loss = 1.0 + 2.0 * group.to(torch::kFloat32);
    const double n1 = group.sum().item<double>();
    freq_mean += (weights(lambda, group, "frequency", p, {}, 32) * loss).sum().item<double>() / trials;
    batch_mean += (weights(lambda, group, "batch", {}, {32 - n1, n1}, 32) * loss).sum().item<double>() / trials;
  }
  EXPECT_NEAR(freq_mean, 2.0, 0.05);
  EXPECT_LT(batch_mean, 1.8);  // ≈ 0.5 + 3·0.5·P(n_1 > 0) = 0.5 + 1.5·0.48
}

TEST(MixtureElbo, WeightsRecoverTheEntropyDifferenceOfTwoGaussians) {
  // For x_0 ~ N(0, s² I_d) the optimal ε-predictor has E‖ε − ε̂‖² = d ᾱs²/(ᾱs² + 1 − ᾱ) at each t; the ELBO
  // E_t[T c_t ·] then differs between s and 2s by the entropy difference d·log 2 (up to the bound's gap).
  diffusion::NoiseSchedule schedule{diffusion::ScheduleConfig{}};
  auto w = elbo_weights(schedule);
  auto abar = schedule.alphas_cumprod().to(torch::kFloat64);
  auto elbo = [&](double s) {
    auto mmse = abar * s * s / (abar * s * s + 1 - abar);
    return (w * 2 * mmse).mean().item<double>();
  };
  for (double s : {0.1, 0.158, 0.35}) EXPECT_NEAR(elbo(2 * s) - elbo(s), 2 * std::log(2.0), 0.1) << s;
  EXPECT_NEAR(w[0].item<double>(), 1000 / (2 * schedule.alphas()[0].item<double>()), 1e-6);  // decoder term
}

TEST(Mixture, LossIsTheLambdaWeightedEpsMse) {
  Fixture f(method_yaml("weighting: batch, estimate: mse,"));
  auto m = f.method();
  data::Batch b;
  b.x = torch::randn({32, 2});
  b.group = torch::tensor({0, 1, 1, 1, 0, 1, 1, 1}, torch::kInt64).repeat({4});  // shares 1/4, 3/4
  b.global_size = 32;
  b.seed = 11;
  auto out = m->loss(*f.policy, b);
  // The same draws as the method: λ = (1/2, 1/2) → ½ mean_0 + ½ mean_1 of the per-sample ε-MSE.
  auto eps = data::draw_global_normal(b, "mixture/eps", {2}, torch::kCPU);
  auto t = data::draw_global_int(b, "mixture/t", f.schedule.num_train_timesteps(), torch::kCPU);
  torch::NoGradGuard no_grad;
  auto mse = (f.policy->forward(f.schedule.add_noise(b.x, eps, t), t, {}) - eps).pow(2).mean(1);
  const double expected = 0.5 * mse.index({b.group == 0}).mean().item<double>() +
                          0.5 * mse.index({b.group == 1}).mean().item<double>();
  EXPECT_NEAR(out.loss.item<double>(), expected, 1e-5);
}

TEST(Mixture, ADualStepRaisesLambdaOfTheGroupWithTheLargerLoss) {
  for (const char* estimate : {"mse", "elbo"}) {
    Fixture f(method_yaml(std::string("estimate: ") + estimate + ", baseline_decay: 0,"));
    auto m = f.method();
    data::Batch b;
    // Group 1 lies far from anything the untrained model predicts well: larger denoising loss.
    b.x = torch::cat({torch::randn({64, 2}) * 0.1, torch::randn({64, 2}) * 0.1 + 6.0});
    b.group = torch::cat({torch::zeros({64}, torch::kInt64), torch::ones({64}, torch::kInt64)});
    b.global_size = 128;
    b.seed = 5;
    m->loss(*f.policy, b);
    auto record = m->end_step(1, f.comm);
    EXPECT_GT(lambda_of(*m, 1), 0.5) << estimate;
    EXPECT_NEAR(lambda_of(*m, 0) + lambda_of(*m, 1), 1.0, 1e-12);  // simplex
    EXPECT_GT(record.at("dual/group1/value"), record.at("dual/group0/value")) << estimate;
    EXPECT_EQ(record.at("dual/rank_spread"), 0.0);
  }
}

TEST(Mixture, StateRestoresLambdaAndBaselineInPlace) {
  Fixture f(method_yaml());
  auto m = f.method();
  auto st = m->state();
  ASSERT_TRUE(st.count("lambda") && st.count("baseline") && st.count("updates"));
  st.at("lambda").copy_(torch::tensor({0.25, 0.75}, torch::kFloat64));  // what a checkpoint restore does
  EXPECT_DOUBLE_EQ(lambda_of(*m, 1), 0.75);
  // The primal weights follow the restored λ.
  data::Batch b;
  b.x = torch::zeros({2, 2});
  b.group = torch::tensor({0, 1}, torch::kInt64);
  b.global_size = 2;
  auto w = weights({0.25, 0.75}, b.group, "frequency", {0.5, 0.5}, {}, 2);
  EXPECT_NEAR(w[1].item<double>(), 0.75, 1e-7);
}

void expect_error(const std::string& yaml, const std::string& needle) {
  const auto error = test::method_error(kModel, yaml);
  EXPECT_NE(error.find(needle), std::string::npos) << error << "\nfor: " << yaml;
}

TEST(Mixture, BadConfigsFailNamingTheKey) {
  expect_error("method: {name: mixture, groups: 1, dual: {}}\n", "method.groups");
  expect_error("method: {name: mixture, groups: 2, dual: {}}\n", "method.group_frequency");
  expect_error("method: {name: mixture, groups: 2, weighting: batch}\n", "method.dual");
  expect_error(method_yaml("weighting: uniform,"), "method.weighting");
  expect_error(method_yaml("constraint: kl, estimate: mse,"), "method.estimate");
  expect_error(method_yaml("thresholds: [1, 2, 3],"), "method.thresholds");
  expect_error("method: {name: mixture, groups: 2, group_frequency: [1, 0], dual: {}}\n", "method.group_frequency");
  expect_error(method_yaml("baseline_decay: 1.0,"), "method.baseline_decay");
  expect_error(method_yaml("elbo_t_min: 1000,"), "method.elbo_t_min");  // T = 1000 timesteps
  expect_error(method_yaml("elbo_t_min: -1,"), "method.elbo_t_min");
  expect_error(method_yaml("no_such_key: 1,"), "method.no_such_key");
}

TEST(Mixture, BadBatchesFailClearly) {
  Fixture f(method_yaml());
  auto m = f.method();
  data::Batch b;
  b.x = torch::randn({4, 2});
  b.global_size = 400;
  b.seed = 1;
  EXPECT_THROW(m->loss(*f.policy, b), std::exception);  // no group ids
  b.group = torch::tensor({0, 1, 2, 1}, torch::kInt64);
  try {
    m->loss(*f.policy, b);  // the ids are checked on the device and read at the dual update
    m->end_step(1, f.comm);
    ADD_FAILURE() << "group id 2 of 2 groups accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("method.groups"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1 samples"), std::string::npos) << e.what();
  }
  // A group too rare for the dual window: names the key to raise.
  Fixture rare("method: {name: mixture, groups: 2, group_frequency: [0.999, 0.001], dual: {every: 1}}\n");
  auto r = rare.method();
  b.group = torch::tensor({0, 0, 0, 1}, torch::kInt64);
  b.global_size = 4;
  try {
    r->loss(*rare.policy, b);
    ADD_FAILURE() << "rare group accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("method.dual.every"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dualign::methods
