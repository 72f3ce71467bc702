// Preference losses (Diffusion-DPO, its hinge variant, DMPO, Diffusion-KTO): exact values when policy ==
// reference, the winner/loser noise sharing, that a few optimizer steps move the implicit margin the right way,
// and the method registry (traits, errors).
#include <gtest/gtest.h>

#include <cmath>

#include "common/method_fixture.h"
#include "methods/method.h"
#include "methods/preference.h"
#include "methods/registry.h"

namespace dualign::methods {
namespace {

const char* kModelYaml = "model: {kind: mlp, data_dim: 2, hidden: 32, depth: 2}\n";

struct Fixture : test::MethodFixture {
  explicit Fixture(const std::string& method_yaml) : MethodFixture(kModelYaml, method_yaml) {}
};
using test::stat;

data::Batch pair_batch(int64_t n, uint64_t seed = 3) {
  data::Batch b;
  b.x = torch::randn({n, 2}) + 1.0;
  b.x_l = torch::randn({n, 2}) - 1.0;
  b.global_size = n;
  b.seed = seed;
  return b;
}

// A few Adam steps of `method` on one batch of 256 pairs: the first and last loss and the last mean margin.
struct Training {
  double first_loss = 0, last_loss = 0, last_margin = 0;
};
Training train_on_pairs(Fixture& f, Method& method, int steps = 30) {
  torch::optim::Adam opt(f.policy->parameters(), torch::optim::AdamOptions(1e-3));
  data::Batch b = pair_batch(256);
  Training r;
  for (int step = 0; step < steps; ++step) {
    opt.zero_grad();
    auto out = method.loss(*f.policy, b);
    out.loss.backward();
    opt.step();
    if (step == 0) r.first_loss = out.loss.item<double>();
    r.last_loss = out.loss.item<double>();
    r.last_margin = stat(out, "reward_margin_sum") / 256;
  }
  return r;
}

TEST(Dpo, AtTheReferenceTheLossIsLog2AndTheMarginZero) {
  Fixture f("method: {name: dpo, beta: 500}\n");
  auto m = f.method();
  auto out = m->loss(*f.policy, pair_batch(64));
  EXPECT_NEAR(out.loss.item<double>(), std::log(2.0), 1e-6);
  EXPECT_NEAR(stat(out, "reward_margin_sum"), 0.0, 1e-6);
  EXPECT_EQ(stat(out, "count"), 64);
}

// A LoRA policy's reference is its own frozen base (no second model is built), and it starts equal to it.
TEST(Dpo, WithLoraTheFrozenBaseIsTheReference) {
  const std::string unet =
      "model: {kind: unet, sample_size: 8, in_channels: 4, out_channels: 4, block_out_channels: [16, 32],\n"
      "        down_block_types: [CrossAttnDownBlock2D, DownBlock2D], up_block_types: [UpBlock2D, CrossAttnUpBlock2D],\n"
      "        layers_per_block: 1, norm_num_groups: 8, cross_attention_dim: 12, attention_head_dim: 4,\n"
      "        lora: {rank: 4}}\n";
  test::MethodFixture f(unet, "method: {name: dpo, beta: 500}\n");
  auto ctx = f.context();
  ctx.build_reference = nullptr;  // would be an error if the method tried to build a copy
  auto m = make_method(f.cfg.section("method"), ctx);
  data::Batch b;
  b.x = torch::randn({3, 4, 8, 8});
  b.x_l = torch::randn({3, 4, 8, 8});
  b.cond.text = torch::randn({3, 2, 12});
  b.global_size = 3;
  auto out = m->loss(*f.policy, b);
  EXPECT_NEAR(out.loss.item<double>(), std::log(2.0), 1e-6);
  EXPECT_EQ(stat(out, "reward_margin_sum"), 0.0);  // exactly: the policy computes its base bit for bit
  out.loss.backward();
  for (const auto& p : f.policy->parameters()) ASSERT_TRUE(p.grad().defined());
  EXPECT_NE(test::method_error(unet, "method: {name: dpo, beta: 1, reference_dtype: bfloat16}\n").find("reference_dtype"),
            std::string::npos);
}

TEST(Dpo, WinnerAndLoserShareTimestepAndNoise) {
  Fixture f("method: {name: dpo, beta: 1}\n");
  auto ref = f.context().build_reference();
  data::Batch b = pair_batch(16);
  b.x_l = b.x.clone();  // identical images: identical MSE only if t and ε are shared
  auto m = pair_mse(*f.policy, *ref, f.schedule, b, torch::kCPU);
  EXPECT_TRUE(torch::equal(m.policy_w, m.policy_l));
}

TEST(Dpo, AFewStepsRaiseTheImplicitMarginOnTheTrainingPairs) {
  Fixture f("method: {name: dpo, beta: 2000}\n");
  auto r = train_on_pairs(f, *f.method());
  EXPECT_LT(r.last_loss, r.first_loss - 0.05);
  EXPECT_GT(r.last_margin, 0.0);
}

TEST(Dpo, ABfloat16ReferenceServesAFloat32Policy) {
  Fixture f("method: {name: dpo, beta: 1, reference_dtype: bfloat16}\n");
  auto m = f.method();
  auto out = m->loss(*f.policy, pair_batch(64));
  out.loss.backward();
  // β = 1: the bf16 rounding of the reference MSE (~1e-2 relative) moves the logit by far less than 0.05.
  EXPECT_NEAR(out.loss.item<double>(), std::log(2.0), 0.05);
  EXPECT_TRUE(f.policy->parameters().front().grad().defined());
  EXPECT_EQ(f.policy->parameters().front().scalar_type(), torch::kFloat32);
}

TEST(Hinge, AtTheReferenceTheLossIsOneAndTheMarginZero) {
  Fixture f("method: {name: hinge, beta: 500}\n");
  auto out = f.method()->loss(*f.policy, pair_batch(64));
  EXPECT_NEAR(out.loss.item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(stat(out, "reward_margin_sum"), 0.0, 1e-6);
}

TEST(Hinge, AwayFromTheReferenceTheLossIsTheMeanHingeOfTheImplicitMargins) {
  Fixture f("method: {name: hinge, beta: 300}\n");
  auto m = f.method();
  {
    torch::NoGradGuard no_grad;  // move the policy off the reference so that margins spread around 1
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    for (auto& p : f.policy->parameters()) p.add_(at::normal(0.0, 0.05, p.sizes(), gen));
  }
  data::Batch b = pair_batch(128);
  auto out = m->loss(*f.policy, b);
  auto ref = f.context().build_reference();
  ref->freeze();
  auto mse = pair_mse(*f.policy, *ref, f.schedule, b, torch::kCPU);
  auto margin = -300.0 * ((mse.policy_w - mse.ref_w) - (mse.policy_l - mse.ref_l));  // written out, not implicit_margin
  const double active = (margin < 1.0).to(torch::kFloat64).mean().item<double>();
  EXPECT_GT(active, 0.05);  // both sides of the hinge are exercised
  EXPECT_LT(active, 0.95);
  const double expected = torch::relu(1.0 - margin).mean().item<double>();
  EXPECT_NEAR(out.loss.item<double>(), expected, 1e-6 * std::max(1.0, expected));  // float32 sums: relative
}

TEST(Hinge, AFewStepsLowerTheLossAndRaiseTheMargin) {
  Fixture f("method: {name: hinge, beta: 2000}\n");
  auto r = train_on_pairs(f, *f.method());
  EXPECT_LT(r.last_loss, r.first_loss - 0.05);
  EXPECT_GT(r.last_margin, 0.0);
}

TEST(Registry, TraitsOfThePairMethodsAndTheUnknownNameMessage) {
  for (const char* name : {"dpo", "hinge", "dmpo"}) {
    const auto& traits = find_method(name, "test").traits;
    EXPECT_TRUE(traits.frozen_reference) << name;
    EXPECT_EQ(traits.items_per_sample, 2) << name;
    EXPECT_EQ(traits.data, "preference_pairs") << name;
  }
  EXPECT_FALSE(find_method("sft", "test").traits.frozen_reference);
  EXPECT_TRUE(find_method("constrained", "test").traits.dual_variables);
  EXPECT_EQ(all_methods().size(), 7u);
  try {
    find_method("dpoo", "config key 'method.name'");
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("method.name"), std::string::npos) << msg;
    EXPECT_NE(msg.find("hinge"), std::string::npos) << msg;  // the known methods are listed
  }
}

TEST(Dmpo, AtTheReferenceTheLossIsTheKlOfAUniformPairToTheLabelTarget) {
  Fixture f("method: {name: dmpo, beta: 500, label_log_alpha: -3}\n");
  auto out = f.method()->loss(*f.policy, pair_batch(32));
  // p = (1/2, 1/2); q = softmax(0, -3)
  const double qw = 1 / (1 + std::exp(-3.0)), ql = 1 - qw;
  const double expected = 0.5 * (std::log(0.5) - std::log(qw)) + 0.5 * (std::log(0.5) - std::log(ql));
  EXPECT_NEAR(out.loss.item<double>(), expected, 1e-5);
}

TEST(Dmpo, RewardTargetUsesTheScoresOfThePair) {
  Fixture f("method: {name: dmpo, beta: 500, target: reward, reward_temperature: 0.5}\n");
  data::Batch b = pair_batch(2);
  b.score_w = torch::tensor({1.0f, 0.2f});
  b.score_l = torch::tensor({0.0f, 0.0f});
  auto out = f.method()->loss(*f.policy, b);
  double expected = 0;
  for (double d : {1.0, 0.2}) {
    const double qw = 1 / (1 + std::exp(-d / 0.5)), ql = 1 - qw;
    expected += 0.5 * (std::log(0.5 / qw) + std::log(0.5 / ql)) / 2;
  }
  EXPECT_NEAR(out.loss.item<double>(), expected, 1e-5);
}

TEST(Dmpo, RewardTargetWithoutScoresIsAClearError) {
  Fixture f("method: {name: dmpo, beta: 500, target: reward}\n");
  try {
    f.method()->loss(*f.policy, pair_batch(4));
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("score_w"), std::string::npos) << e.what();
  }
}

TEST(Kto, AtTheReferenceTheUtilityIsOneHalfAndTheReferencePointZero) {
  Fixture f("method: {name: kto, beta: 500}\n");
  data::Batch b;
  b.x = torch::randn({40, 2});
  b.desirable = (torch::arange(40) % 2).to(torch::kFloat32);
  b.global_size = 40;
  auto out = f.method()->loss(*f.policy, b);
  EXPECT_NEAR(out.loss.item<double>(), 0.5, 1e-6);
  EXPECT_NEAR(stat(out, "kl_ref_point_sum"), 0.0, 1e-9);
}

TEST(Methods, UnknownMethodAndBadReferenceDtypeAreClearErrors) {
  Fixture bad_name("method: {name: dpoo, beta: 1}\n");
  EXPECT_THROW(bad_name.method(), std::exception);
  Fixture bad_dtype("method: {name: dpo, beta: 1, reference_dtype: half}\n");
  try {
    bad_dtype.method();
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("method.reference_dtype"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dualign::methods
