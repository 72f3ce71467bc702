#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "models/mlp_score.h"

using namespace dualign::models;

TEST(ScoreMLP, ShapesAndClassConditioning) {
  torch::manual_seed(0);
  ScoreMLP net(ScoreMLPConfig{.data_dim = 3, .hidden = 32, .depth = 2, .time_embed_dim = 16, .num_classes = 4});
  auto x = torch::randn({5, 3});
  auto t = torch::tensor({0, 1, 10, 500, 999}, torch::kInt64);
  auto y0 = net->forward(x, t, torch::zeros({5}, torch::kInt64));
  auto y1 = net->forward(x, t, torch::ones({5}, torch::kInt64));
  EXPECT_EQ(y0.sizes(), x.sizes());
  EXPECT_GT((y0 - y1).abs().max().item<double>(), 1e-6);  // labels matter
  auto yt = net->forward(x, t + 1, torch::zeros({5}, torch::kInt64));
  EXPECT_GT((y0 - yt).abs().max().item<double>(), 1e-6);  // time matters
  // float timesteps (SDE/ODE samplers) are accepted and agree at integers
  auto yf = net->forward(x, t.to(torch::kFloat32), torch::zeros({5}, torch::kInt64));
  EXPECT_LT((yf - y0).abs().max().item<double>(), 1e-6);
  y0.sum().backward();
  for (auto& p : net->parameters()) EXPECT_TRUE(p.grad().defined());
}

TEST(ScoreMLP, SinusoidalEmbeddingMatchesDiffusers) {
  // diffusers get_timestep_embedding(t, 4, flip_sin_to_cos=True, downscale_freq_shift=0): freqs [1, 1e-2]
  auto e = sinusoidal_embedding(torch::tensor({3.0}), 4);
  std::vector<double> expect{std::cos(3.0), std::cos(0.03), std::sin(3.0), std::sin(0.03)};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(e[0][i].item<double>(), expect[i], 1e-6);
}

TEST(ScoreMLP, RejectsWrongInput) {
  ScoreMLP net(ScoreMLPConfig{.data_dim = 2});
  EXPECT_ANY_THROW(net->forward(torch::randn({4, 3}), torch::zeros({4}, torch::kInt64)));
}
