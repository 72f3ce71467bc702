// The recipe's per-step draws (data/latent_augment.h): posterior samples have the stored mean and variance, flips
// and dropped prompts occur at their configured rates, and a rank's slice equals the rows of the global draw.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "data/latent_augment.h"

namespace dualign {
namespace {

// A global micro-batch of n rows seen whole (one rank) or as the slice [offset, offset + local).
data::Batch batch_of(int64_t n, int64_t offset = 0, int64_t local = -1) {
  data::Batch b;
  b.seed = 1234;
  b.global_size = n;
  b.offset = offset;
  b.x = torch::zeros({local < 0 ? n : local, 1});
  return b;
}

// n rows of one [2, 2, 2] posterior: every element has its own mean and log-variance.
data::LatentPosterior posterior(int64_t n) {
  auto mean = torch::linspace(-2.0, 3.0, 8).view({1, 2, 2, 2});
  auto logvar = torch::linspace(-6.0, 1.0, 8).view({1, 2, 2, 2});
  return {mean.expand({n, 2, 2, 2}).clone(), logvar.expand({n, 2, 2, 2}).clone(), (mean + 10).expand({n, 2, 2, 2}).clone(),
          (logvar - 1).expand({n, 2, 2, 2}).clone()};
}

TEST(LatentAugment, PosteriorDrawsHaveTheStoredMeanAndVariance) {
  const int64_t n = 40000;
  auto p = posterior(n);
  auto z = data::sample_posterior(p.mean, p.logvar, batch_of(n), "data/posterior/x").to(torch::kFloat64);
  auto var = p.logvar[0].to(torch::kFloat64).exp();
  auto mean_hat = z.mean(0), var_hat = z.var(0);
  // 5 standard errors: SE(mean) = sigma / sqrt(n), SE(variance) = sigma^2 sqrt(2 / (n - 1)) for a normal sample.
  auto mean_err = (mean_hat - p.mean[0]).abs() / (var / n).sqrt();
  auto var_err = (var_hat - var).abs() / (var * std::sqrt(2.0 / (n - 1)));
  EXPECT_LT(mean_err.max().item<double>(), 5.0) << mean_hat << p.mean[0];
  EXPECT_LT(var_err.max().item<double>(), 5.0) << var_hat << var;
  // The smallest variance is e^-6: the draws are not the mean.
  EXPECT_GT((z - p.mean.to(torch::kFloat64)).abs().min().item<double>(), 0.0);
}

TEST(LatentAugment, FlipsHappenAtTheirRateAndTakeTheFlippedPosteriorWhole) {
  const int64_t n = 20000;
  for (double rate : {0.0, 0.3, 0.5, 1.0}) {
    auto p = posterior(n);
    auto out = data::choose_flipped(p, rate, batch_of(n), "data/flip/x");
    auto flipped = (out.mean - p.flip_mean).flatten(1).abs().amax(1) == 0;
    auto kept = (out.mean - p.mean).flatten(1).abs().amax(1) == 0;
    EXPECT_TRUE((flipped ^ kept).all().item<bool>()) << "each row is one posterior, never a mix";
    EXPECT_TRUE(torch::equal(flipped, (out.logvar - p.flip_logvar).flatten(1).abs().amax(1) == 0))
        << "the mean and the log-variance flip together";
    double frac = flipped.to(torch::kFloat64).mean().item<double>();
    double se = std::sqrt(rate * (1 - rate) / n);  // binomial
    EXPECT_NEAR(frac, rate, 5 * se + 1e-12) << "rate " << rate;
  }
}

TEST(LatentAugment, EmptyPromptsReplaceRowsAtTheirRate) {
  const int64_t n = 20000;
  const double rate = 0.2;
  auto text = torch::arange(n, torch::kFloat32).view({n, 1, 1}).expand({n, 3, 2}).clone() + 1;
  auto empty = torch::zeros({1, 3, 2});
  auto out = data::drop_prompts(text, empty, rate, batch_of(n), "data/empty_prompt");
  auto dropped = out.flatten(1).abs().amax(1) == 0;
  auto kept = (out - text).flatten(1).abs().amax(1) == 0;
  EXPECT_TRUE((dropped ^ kept).all().item<bool>());
  EXPECT_NEAR(dropped.to(torch::kFloat64).mean().item<double>(), rate, 5 * std::sqrt(rate * (1 - rate) / n));
}

TEST(LatentAugment, ARankSliceIsTheSameRowsOfTheGlobalDraw) {
  const int64_t n = 12;
  auto whole = posterior(n);
  auto all_flip = data::choose_flipped(whole, 0.5, batch_of(n), "data/flip/x");
  auto all_z = data::sample_posterior(all_flip.mean, all_flip.logvar, batch_of(n), "data/posterior/x");
  for (int64_t offset : {0, 4, 8}) {
    auto part = posterior(4);
    auto b = batch_of(n, offset, 4);
    auto flip = data::choose_flipped(part, 0.5, b, "data/flip/x");
    auto z = data::sample_posterior(flip.mean, flip.logvar, b, "data/posterior/x");
    EXPECT_TRUE(torch::equal(z, all_z.narrow(0, offset, 4))) << "offset " << offset;
  }
  // Another purpose is another stream: the loser's flips are not the winner's.
  auto other = data::choose_flipped(whole, 0.5, batch_of(n), "data/flip/x_l");
  EXPECT_FALSE(torch::equal(other.mean, all_flip.mean));
}

}  // namespace
}  // namespace dualign
