// AutocastScope: the C++ form of torch.autocast on CPU (bf16 and fp16), its nesting, state restore and cast cache.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include "models/autocast.h"
#include "models/unet.h"
#include "models/unet_blocks.h"
#include "tiny_unet.h"

using namespace dualign::models;

TEST(Autocast, Fp32IsANoOp) {
  AutocastScope scope(torch::kCPU, torch::kFloat32);
  EXPECT_FALSE(scope.active());
  EXPECT_EQ(torch::mm(torch::randn({2, 2}), torch::randn({2, 2})).scalar_type(), torch::kFloat32);
}

TEST(Autocast, CpuMatmulsRunInTheChosenDtypeAndTheStateIsRestored) {
  for (auto dtype : {torch::kBFloat16, torch::kHalf}) {
    auto a = torch::randn({4, 4}), b = torch::randn({4, 4});
    {
      AutocastScope scope(torch::kCPU, dtype);
      EXPECT_TRUE(scope.active());
      EXPECT_EQ(torch::mm(a, b).scalar_type(), dtype);
      // Ops outside the lower-precision list keep their input dtype; mixed inputs promote as usual.
      EXPECT_EQ(torch::exp(a).scalar_type(), torch::kFloat32);
      EXPECT_EQ((torch::mm(a, b) + a).scalar_type(), torch::kFloat32);
    }
    EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat32);
  }
}

TEST(Autocast, NestedScopesRestoreTheOuterDtype) {
  auto a = torch::randn({4, 4});
  AutocastScope outer(torch::kCPU, torch::kBFloat16);
  {
    AutocastScope inner(torch::kCPU, torch::kHalf);
    EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kHalf);
  }
  EXPECT_TRUE(at::autocast::is_autocast_enabled(at::kCPU));
  EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kBFloat16);
}

// The cast of a parameter is cached for the rest of the outermost scope: one cast per forward region. (Through
// models::linear = aten::linear, as the UNet calls its linear layers; LibTorch's LinearImpl::forward transposes the
// weight first, and a view's cast is never cached.)
TEST(Autocast, WeightCastsAreCachedForTheOutermostScope) {
  torch::nn::Linear lin(torch::nn::LinearOptions(4, 4).bias(false));
  auto x = torch::randn({2, 4});
  auto updated = [&] { torch::NoGradGuard g; lin->weight.mul_(2.0); };
  {
    AutocastScope scope(torch::kCPU, torch::kBFloat16);
    auto first = linear(lin, x);
    updated();
    EXPECT_TRUE(torch::equal(linear(lin, x), first)) << "inside the scope the cached bf16 weight is reused";
  }
  AutocastScope scope(torch::kCPU, torch::kBFloat16);
  auto first = linear(lin, x);
  updated();
  {
    AutocastScope again(torch::kCPU, torch::kBFloat16);
    EXPECT_TRUE(torch::equal(linear(lin, x), first)) << "a nested scope keeps the outer scope's cache";
  }
}

// Leaving the outermost scope drops the cache, so a forward after an optimizer update sees the new weights
// (doubling is exact in bf16, so the result is exactly twice the first one).
TEST(Autocast, ANewScopeCastsTheUpdatedWeights) {
  torch::nn::Linear lin(torch::nn::LinearOptions(4, 4).bias(false));
  auto x = torch::randn({2, 4});
  torch::Tensor first;
  {
    AutocastScope scope(torch::kCPU, torch::kBFloat16);
    first = linear(lin, x);
  }
  {
    torch::NoGradGuard g;
    lin->weight.mul_(2.0);
  }
  AutocastScope scope(torch::kCPU, torch::kBFloat16);
  EXPECT_TRUE(torch::equal(linear(lin, x), first * 2)) << "the cast cache was cleared when the first scope ended";
}

// Activation checkpointing recomputes blocks in backward, outside the forward's scope. The recomputation's weight
// casts must not outlive it: the forward after an optimizer update would otherwise run on the old weights.
TEST(Autocast, CheckpointedRecomputationLeavesNoStaleWeightCasts) {
  const UNetConfig c = test::tiny_unet_config();
  torch::manual_seed(3);
  UNet2DConditionModel checkpointed(c), plain(c);
  {
    torch::NoGradGuard g;
    auto src = checkpointed->parameters(), dst = plain->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  checkpointed->set_gradient_checkpointing(true);
  auto x = torch::randn({2, 4, 8, 8}), ctx = torch::randn({2, 3, 12});
  auto t = torch::tensor({3, 700});
  auto forward = [&](UNet2DConditionModel& m) {
    AutocastScope autocast(torch::kCPU, torch::kBFloat16);
    return m->forward(x, t, ctx);
  };
  forward(checkpointed).to(torch::kFloat32).pow(2).mean().backward();  // recomputes under autocast
  {
    torch::NoGradGuard g;  // "the optimizer step"
    for (auto* m : {&checkpointed, &plain})
      for (auto& p : (*m)->parameters()) p.mul_(0.5);
  }
  // In this order: the plain model's scope would clear a stale cache on its way out.
  auto after_update = forward(checkpointed);
  EXPECT_TRUE(torch::equal(after_update, forward(plain)));
}

TEST(Autocast, PrecisionNames) {
  EXPECT_EQ(autocast_dtype("fp32", "train.precision"), torch::kFloat32);
  EXPECT_EQ(autocast_dtype("bf16", "train.precision"), torch::kBFloat16);
  EXPECT_EQ(autocast_dtype("fp16", "train.precision"), torch::kHalf);
  try {
    autocast_dtype("half", "train.precision");
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("train.precision"), std::string::npos) << e.what();
  }
}
