#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/ema.h"

using namespace dualign::models;

TEST(EMA, TracksExponentialAverage) {
  torch::nn::Linear lin(2, 2);
  torch::NoGradGuard no_grad;
  lin->weight.fill_(0);
  EMA ema(*lin, 0.9, /*use_warmup=*/false);
  // after k updates with the weight held at 1: shadow = 1 - 0.9^k
  lin->weight.fill_(1);
  for (int k = 1; k <= 5; ++k) ema.update(*lin);
  EXPECT_NEAR(ema.state().at("weight")[0][0].item<double>(), 1 - std::pow(0.9, 5), 1e-6);
  torch::nn::Linear copy(2, 2);
  ema.copy_to(*copy);
  EXPECT_NEAR(copy->weight[1][1].item<double>(), 1 - std::pow(0.9, 5), 1e-6);
  // warmup as diffusers' EMAModel: (1 + t) / (10 + t) at step t
  EMA warm(*lin, 0.9999, true);
  EXPECT_NEAR(warm.current_decay(), 0.1, 1e-12);
  warm.update(*lin);
  EXPECT_NEAR(warm.current_decay(), 2.0 / 11.0, 1e-12);
  EMA restored(*lin, 0.9, false);
  restored.load_state(ema.state(), ema.num_updates());
  EXPECT_TRUE(torch::equal(restored.state().at("weight"), ema.state().at("weight")));
}
