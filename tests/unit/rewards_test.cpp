// Rewards: exact gmm_target values, Bradley–Terry label frequencies vs σ (within 4 standard errors for a fixed
// seed), KTO desirability, the classifier's forward shape and checkpoint round trip, errors naming the key.
#include <gtest/gtest.h>

#include <cmath>

#include "config/config.h"
#include "data_test_util.h"
#include "rewards/classifier.h"
#include "rewards/image_statistics.h"
#include "rewards/preference.h"
#include "rewards/reward.h"

namespace dualign::rewards {
namespace {

using test::temp_dir;

// A reward section from YAML text, as `dualign data pairs --reward FILE` builds it (origins name the "file").
config::Config yaml_config(const std::string& text) {
  config::Composed c;
  c.config = c.resolved = YAML::Load(text);
  for (const auto& kv : c.config) c.origins[kv.first.as<std::string>()] = "reward.yaml:1";
  return config::Config(std::move(c));
}

std::unique_ptr<Reward> reward_from(const std::string& text) {
  return make_reward(yaml_config(text).root(), torch::kCPU);
}

TEST(RewardsGmm, ValuesAreExact) {
  auto r = reward_from("{kind: gmm_target, target: [2.5, 0.0]}");
  auto x = torch::tensor({2.5f, 0.0f, 0.0f, 0.0f, 1.0f, 1.0f, -1.5f, 2.0f}).view({4, 2});
  auto s = r->score(x, {});
  ASSERT_EQ(s.scalar_type(), torch::kFloat);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{4}));
  EXPECT_FLOAT_EQ(s[0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(s[1].item<float>(), -6.25f);
  EXPECT_FLOAT_EQ(s[2].item<float>(), -3.25f);
  EXPECT_FLOAT_EQ(s[3].item<float>(), -20.0f);
  auto scaled = reward_from("{kind: gmm_target, target: [2.5, 0.0], scale: 0.5}")->score(x, {});
  EXPECT_TRUE(torch::allclose(scaled, 0.5 * s));
  EXPECT_ERROR_MENTIONS(r->score(torch::zeros({3, 3}), {}), "2 coordinates", "[3, 3]");
}

TEST(RewardsErrors, NameTheKey) {
  EXPECT_ERROR_MENTIONS(reward_from("{kind: gmm_target, target: [1, 0], scal: 2}"), "scal", "scale");
  EXPECT_ERROR_MENTIONS(reward_from("{kind: gmm_tagret, target: [1, 0]}"), "kind", "gmm_tagret", "gmm_target");
  EXPECT_ERROR_MENTIONS(reward_from("{kind: gmm_target}"), "target");
  EXPECT_ERROR_MENTIONS(reward_from("{kind: gmm_target, target: [1, a]}"), "target", "list of numbers");
  EXPECT_ERROR_MENTIONS(reward_from("{kind: classifier, checkpoint: /no/such/clf.h5, classes: [5]}"), "checkpoint",
                        "/no/such/clf.h5");
  EXPECT_ERROR_MENTIONS(reward_from("{kind: classifier, checkpoint: x.h5, classes: [5], output: logit}"), "output",
                        "logit");
}

TEST(RewardsBradleyTerry, FrequenciesMatchSigmoid) {
  const double beta = 1.5;
  const int64_t n = 20000;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
  for (double gap : {-2.0, -0.5, 0.0, 0.3, 1.0, 3.0}) {
    auto r_a = torch::full({n}, gap, torch::kDouble), r_b = torch::zeros({n}, torch::kDouble);
    const double p = 1 / (1 + std::exp(-beta * gap));
    const double freq = bradley_terry_labels(r_a, r_b, beta, gen).to(torch::kDouble).mean().item<double>();
    const double se = std::sqrt(p * (1 - p) / n);
    EXPECT_LE(std::abs(freq - p), 4 * se + 1e-12) << "gap " << gap << ": frequency " << freq << ", sigma " << p;
  }
  // The same seed gives the same labels.
  auto r_a = torch::randn({100}), r_b = torch::randn({100});
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(7), g2 = at::make_generator<at::CPUGeneratorImpl>(7);
  EXPECT_TRUE(torch::equal(bradley_terry_labels(r_a, r_b, beta, g1), bradley_terry_labels(r_a, r_b, beta, g2)));
  // beta = inf: the argmax, ties go to a.
  auto hard = bradley_terry_labels(torch::tensor({1.0, 0.0, 2.0}), torch::tensor({0.0, 0.0, 3.0}), INFINITY, g1);
  EXPECT_TRUE(torch::equal(hard, torch::tensor({true, true, false})));
  EXPECT_ERROR_MENTIONS(bradley_terry_labels(r_a, r_b, -1.0, g1), "beta");
}

TEST(RewardsBradleyTerry, SummaryAgreement) {
  auto s = summarize_pairs(torch::tensor({1.0, 2.0, 0.0, 5.0}), torch::tensor({0.0, 3.0, 0.0, 1.0}), INFINITY);
  EXPECT_DOUBLE_EQ(s.mean_winner, 2.0);
  EXPECT_DOUBLE_EQ(s.mean_loser, 1.0);
  EXPECT_DOUBLE_EQ(s.agreement, (1 + 0 + 0.5 + 1) / 4.0);
  EXPECT_DOUBLE_EQ(s.mean_abs_gap, (1 + 1 + 0 + 4) / 4.0);
}

TEST(RewardsKto, DesirabilityAroundTheMedian) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const int64_t n = 20000;
  auto r = torch::randn({n}, gen, torch::kDouble).exp();  // skewed, like log-prob rewards
  auto hard = kto_desirability(r, INFINITY, gen);
  EXPECT_EQ(hard.desirable.sum().item<int64_t>(), n / 2);
  EXPECT_TRUE((r.index({hard.desirable}).min() > r.index({hard.desirable.logical_not()}).max()).item<bool>());
  const double beta = 2.0;
  auto soft = kto_desirability(r, beta, gen);
  auto p = torch::sigmoid(beta * (r - soft.median));
  const double expected = p.mean().item<double>();
  const double se = std::sqrt((p * (1 - p)).sum().item<double>()) / n;
  EXPECT_NEAR(soft.desirable.to(torch::kDouble).mean().item<double>(), expected, 4 * se);
}

TEST(RewardsClassifier, ForwardShapes) {
  torch::manual_seed(0);
  for (int64_t side : {28, 14}) {
    ImageClassifier m(ClassifierConfig{1, side, 10, 8});
    m->eval();
    auto logits = m->forward(torch::rand({5, 1, side, side}) * 2 - 1);
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{5, 10})) << side;
  }
  ImageClassifier m(ClassifierConfig{1, 28, 10, 8});
  EXPECT_ERROR_MENTIONS(m->forward(torch::zeros({2, 1, 14, 14})), "[B, 1, 28, 28]", "[2, 1, 14, 14]");
}

TEST(RewardsClassifier, CheckpointRoundTripAndReward) {
  torch::manual_seed(1);
  const auto path = (temp_dir() / "clf.h5").string();
  ImageClassifier m(ClassifierConfig{1, 14, 10, 8});
  // Non-trivial batch-norm statistics, so buffers must round-trip too.
  m->train();
  for (int i = 0; i < 3; ++i) m->forward(torch::randn({16, 1, 14, 14}));
  m->eval();
  save_classifier(path, m, {{"test_accuracy", 0.875}, {"split", std::string("even")}, {"seed", int64_t{3}}});
  auto x = torch::rand({6, 1, 14, 14}) * 2 - 1;
  auto loaded = load_classifier(path, torch::kCPU);
  EXPECT_DOUBLE_EQ(loaded.test_accuracy, 0.875);
  EXPECT_EQ(loaded.model->config().width, 8);
  EXPECT_EQ(loaded.model->config().image_size, 14);
  EXPECT_TRUE(torch::allclose(loaded.model->forward(x), m->forward(x)));

  // The classifier reward = log of the summed class probabilities.
  auto logp = torch::log_softmax(m->forward(x), 1);
  auto r = reward_from("{kind: classifier, checkpoint: " + path + ", classes: [5, 7, 9]}")->score(x, {});
  auto expected = torch::logsumexp(logp.index_select(1, torch::tensor({5, 7, 9})), 1);
  EXPECT_TRUE(torch::allclose(r, expected, 1e-5, 1e-6));
  auto prob = reward_from("{kind: classifier, checkpoint: " + path + ", classes: [5, 7, 9], output: prob}")->score(x, {});
  EXPECT_TRUE(torch::allclose(prob, expected.exp(), 1e-5, 1e-6));
  auto all = reward_from("{kind: classifier, checkpoint: " + path + ", classes: [0,1,2,3,4,5,6,7,8,9]}")->score(x, {});
  EXPECT_LT(all.abs().max().item<float>(), 1e-5);

  EXPECT_ERROR_MENTIONS(reward_from("{kind: classifier, checkpoint: " + path + ", classes: [5, 10]}"), "classes",
                        "10-class");
}

}  // namespace
}  // namespace dualign::rewards

// A grayscale image is its own luminance: brightness is the mean of the [0, 1]-mapped pixels; an RGB image with the
// same plane in every channel gives the same statistics (the weights sum to 1); colour statistics refuse it.
TEST(RewardsImageStatistics, GrayscaleImagesAreTheirOwnLuminance) {
  torch::manual_seed(0);
  auto gray = torch::rand({4, 1, 14, 14}) * 2.4 - 1.2;  // some pixels outside [-1, 1]: clamped like RGB
  auto expected = (gray * 0.5 + 0.5).clamp(0, 1).mean({1, 2, 3});
  EXPECT_TRUE(torch::allclose(dualign::rewards::brightness(gray), expected, 1e-6, 1e-7));
  auto rgb = gray.expand({4, 3, 14, 14});
  EXPECT_TRUE(torch::allclose(dualign::rewards::brightness(rgb), expected, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(dualign::rewards::global_contrast(gray), dualign::rewards::global_contrast(rgb), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(dualign::rewards::local_contrast(gray), dualign::rewards::local_contrast(rgb), 1e-5, 1e-6));
  EXPECT_THROW(dualign::rewards::saturation(gray), std::exception);
}
