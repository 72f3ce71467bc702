// GradSync edge cases: unused parameters, bf16 parameters (fp32 accumulation), an optimizer that resets
// .grad to None, and buckets that really start during backward.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/comm.h"
#include "dist/grad_sync.h"

using namespace dualign::dist;

namespace {
Comm& comm() {
  static auto c = make_comm(world(), torch::kCPU);
  return *c;
}

// Rank-dependent input so the average differs from every rank's local gradient.
torch::Tensor input_for_rank(int rank, int64_t features) {
  return torch::full({2, features}, 1.0 + rank);
}
double mean_rank_factor() { return 1.0 + (comm().size() - 1) / 2.0; }
}  // namespace

TEST(DistGradSync, UnusedParameterDoesNotHangAndGetsZero) {
  torch::manual_seed(3);
  torch::nn::Linear used(4, 3), unused(4, 3);
  std::vector<torch::Tensor> params = used->parameters();
  for (auto& p : unused->parameters()) params.push_back(p);
  GradSyncOptions o;
  o.first_bucket_bytes = 16;
  o.bucket_cap_bytes = 16;  // one parameter per bucket, the unused ones in between
  GradSync sync(comm(), params, o);
  used->forward(input_for_rank(comm().rank(), 4)).sum().backward();
  sync.finish();
  EXPECT_EQ(unused->weight.grad().abs().sum().item<float>(), 0.f);
  // d(sum(Wx+b))/dW = sum over the batch of x -> 2 * (1 + rank), averaged over ranks.
  EXPECT_NEAR(used->weight.grad()[0][0].item<float>(), 2 * mean_rank_factor(), 1e-5);
  EXPECT_NEAR(used->bias.grad()[0].item<float>(), 2.0, 1e-6);
}

TEST(DistGradSync, BFloat16ParamsAccumulateInFloat32) {
  torch::manual_seed(4);
  torch::nn::Linear lin(8, 1);
  lin->to(torch::kBFloat16);
  GradSync sync(comm(), lin->parameters(), {});
  const int micro = 4;
  for (int m = 0; m < micro; ++m) {
    sync.begin_micro_step(m == micro - 1);
    // 1/3 is not representable in bf16; accumulating four of them in bf16 would drift.
    (lin->forward(input_for_rank(comm().rank(), 8).to(torch::kBFloat16)).sum() / 3.0).backward();
  }
  sync.finish();
  ASSERT_EQ(lin->weight.grad().scalar_type(), torch::kBFloat16);
  const double expected = micro * 2 * mean_rank_factor() / 3.0;
  EXPECT_NEAR(lin->weight.grad()[0][0].item<float>(), expected, expected * 8e-3);  // one bf16 rounding
  sync.zero_grad();
  EXPECT_FALSE(lin->weight.grad().defined());
}

TEST(DistGradSync, SurvivesOptimizerZeroGradSetToNone) {
  torch::manual_seed(5);
  torch::nn::Linear lin(4, 2);
  GradSync sync(comm(), lin->parameters(), {});
  torch::optim::SGD opt(lin->parameters(), 0.0);
  opt.zero_grad();  // set_to_none (after detach_): .grad is no longer a bucket view
  lin->forward(input_for_rank(comm().rank(), 4)).sum().backward();
  sync.finish();
  EXPECT_NEAR(lin->weight.grad()[1][3].item<float>(), 2 * mean_rank_factor(), 1e-5);
  sync.zero_grad();
  EXPECT_EQ(lin->weight.grad().abs().sum().item<float>(), 0.f);
}

TEST(DistGradSync, OverlapLaunchesBucketsDuringBackwardOnly) {
  torch::manual_seed(6);
  torch::nn::Sequential net(torch::nn::Linear(16, 16), torch::nn::Tanh(), torch::nn::Linear(16, 16),
                            torch::nn::Tanh(), torch::nn::Linear(16, 1));
  GradSyncOptions o;
  o.first_bucket_bytes = 1100;
  o.bucket_cap_bytes = 1100;  // one Linear per bucket
  for (bool overlap : {true, false}) {
    o.overlap = overlap;
    GradSync sync(comm(), net->parameters(), o);
    net->forward(torch::randn({4, 16})).sum().backward();
    sync.finish();
    EXPECT_EQ(sync.num_buckets(), 3u);
    EXPECT_EQ(sync.last_launched_during_backward(), overlap ? 3u : 0u);
  }
}

// Layers registered in the opposite order of their use: the registration-order buckets become ready only at
// the end of backward. After the first step the buckets follow rank 0's gradient-ready order, and every bucket
// but the last starts during backward. The gradients are the same either way (the average is elementwise).
TEST(DistGradSync, RebuildsBucketsInGradientReadyOrder) {
  torch::manual_seed(7);
  torch::nn::Linear last(16, 1), middle(16, 16), first(16, 16);  // registered: last, middle, first
  std::vector<torch::Tensor> params;
  for (auto* m : {&last, &middle, &first})
    for (auto& p : (*m)->parameters()) params.push_back(p);
  auto forward = [&] {
    auto x = input_for_rank(comm().rank(), 16);
    return last->forward(torch::tanh(middle->forward(torch::tanh(first->forward(x))))).sum();
  };
  auto grads = [&] {
    std::vector<torch::Tensor> g;
    for (auto& p : params) g.push_back(p.grad().clone());
    return g;
  };
  GradSyncOptions o;
  o.first_bucket_bytes = 16;
  o.bucket_cap_bytes = 16;  // one parameter per bucket
  GradSync sync(comm(), params, o);
  forward().backward();
  sync.finish();
  EXPECT_FALSE(sync.buckets_rebuilt());
  EXPECT_EQ(sync.num_buckets(), 6u);
  EXPECT_LE(sync.last_launched_early(), 1u);  // buckets 0 and 1 (`first`) are ready last: all wait for them
  const auto before = grads();
  sync.zero_grad();
  EXPECT_TRUE(sync.buckets_rebuilt());
  for (auto& p : params) EXPECT_EQ(p.grad().abs().sum().item<float>(), 0.f);
  forward().backward();
  sync.finish();
  EXPECT_EQ(sync.num_buckets(), 6u);
  EXPECT_EQ(sync.last_launched_early(), 5u);  // each bucket as soon as its gradient arrives, but the last
  const auto after = grads();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i])) << i;
  // The rebuilt buckets keep working over steps.
  sync.zero_grad();
  forward().backward();
  sync.finish();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i].grad(), before[i])) << i;
}
