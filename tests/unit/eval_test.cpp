#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "diffusion/sampler.h"
#include "data/h5.h"
#include "data/h5_tensor.h"
#include "eval/implicit.h"
#include "eval/kl.h"
#include "eval/metrics.h"
#include "eval/png.h"
#include "eval/samples_io.h"
#include "recipe_pairs.h"
#include "util/error.h"

using namespace dualign;
using namespace dualign::eval;
namespace fs = std::filesystem;

namespace {

// Exact ε-predictor of data N(mu, sigma² I) under `s`: ε*(x, t) = sqrt(1-ᾱ)(x - sqrt(ᾱ) mu) / (ᾱ sigma² + 1 - ᾱ).
// Integer t: discrete ᾱ_t per row; float t (continuous time, one value per call): ᾱ(s).
Denoiser gaussian_model(const diffusion::NoiseSchedule& s, torch::Tensor mu, double sigma) {
  return [&s, mu, sigma](const torch::Tensor& x, const torch::Tensor& t, const data::Condition&) {
    torch::Tensor a;
    if (t.is_floating_point())
      a = torch::full({x.size(0), 1}, s.alpha_bar_continuous(t[0].item<double>()), x.options());
    else
      a = s.alphas_cumprod().index({t.cpu()}).to(x.options()).reshape({-1, 1});
    return (1 - a).sqrt() * (x - a.sqrt() * mu.to(x.options())) / (a * sigma * sigma + 1 - a);
  };
}

// KL(N(m1, s1² I) ‖ N(m2, s2² I)) in D dimensions.
double gaussian_kl(const torch::Tensor& m1, double s1, const torch::Tensor& m2, double s2) {
  const double d = double(m1.numel());
  return d * (std::log(s2 / s1) + s1 * s1 / (2 * s2 * s2) - 0.5) + (m1 - m2).pow(2).sum().item<double>() / (2 * s2 * s2);
}

double gaussian_log_prob(const torch::Tensor& x, const torch::Tensor& mu, double sigma, int64_t i) {
  const double d = double(mu.numel());
  return (-(x[i] - mu).pow(2).sum().item<double>() / (2 * sigma * sigma) - d * std::log(sigma) - 0.5 * d * std::log(2 * M_PI));
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("dualign_eval_test_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST(EvalMetrics, WinRateCountsTiesAsHalf) {
  auto a = torch::tensor({1.0, 2.0, 3.0, 4.0}), b = torch::tensor({0.0, 2.0, 5.0, 1.0});
  auto w = win_rate(a, b);
  EXPECT_DOUBLE_EQ(w.mean, 0.625);  // win, tie, loss, win
  EXPECT_NEAR(w.se, torch::tensor({1.0, 0.5, 0.0, 1.0}, torch::kFloat64).std().item<double>() / 2, 1e-12);
  EXPECT_EQ(w.n, 4);
  EXPECT_DOUBLE_EQ(win_rate(a, a).mean, 0.5);
  EXPECT_DOUBLE_EQ(win_rate(a, a).se, 0.0);
  EXPECT_THROW(win_rate(a, torch::ones({3})), Error);
}

TEST(EvalMetrics, WinRateMatchesNormalCdf) {
  // a - b ~ N(0.5, 1): P(a > b) = Φ(0.5) = 0.69146.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const int64_t n = 20000;
  auto b = torch::randn({n}, gen, torch::kFloat64);
  auto a = b + 0.5 + torch::randn({n}, gen, torch::kFloat64);
  auto w = win_rate(a, b);
  std::printf("win rate %.4f ± %.4f (expected 0.69146)\n", w.mean, w.se);
  EXPECT_NEAR(w.mean, 0.69146, 4 * w.se);
  EXPECT_NEAR(w.se, std::sqrt(0.69146 * (1 - 0.69146) / n), 2e-4);
}

TEST(EvalMetrics, MeanSe) {
  auto m = mean_se(torch::tensor({1.0, 2.0, 3.0, 4.0, 5.0}));
  EXPECT_DOUBLE_EQ(m.mean, 3.0);
  EXPECT_NEAR(m.se, std::sqrt(2.5 / 5), 1e-12);
}

TEST(EvalMetrics, ClassHistogramSharesTvEntropyCoverage) {
  // 4 classes; shares 0.5, 0.3, 0.195, 0.005 (last one below the 1 % coverage threshold).
  std::vector<int64_t> labels;
  for (auto [k, count] : std::vector<std::pair<int64_t, int>>{{0, 1000}, {1, 600}, {2, 390}, {3, 10}})
    labels.insert(labels.end(), count, k);
  auto h = class_histogram_from_labels(torch::tensor(labels), 4);
  ASSERT_EQ(h.share.size(), 4u);
  EXPECT_NEAR(h.share[0], 0.5, 1e-12);
  EXPECT_NEAR(h.share[3], 0.005, 1e-12);
  EXPECT_EQ(h.coverage, 3);
  EXPECT_NEAR(h.tv_uniform, 0.5 * (0.25 + 0.05 + 0.055 + 0.245), 1e-12);
  EXPECT_NEAR(h.entropy, -(0.5 * std::log(0.5) + 0.3 * std::log(0.3) + 0.195 * std::log(0.195) + 0.005 * std::log(0.005)),
              1e-12);
  // Uniform: TV 0, entropy log K; from probabilities via argmax.
  auto probs = torch::eye(5).repeat({20, 1}) * 0.6 + 0.08;  // rows sum to 1, argmax = class
  auto u = class_histogram(probs);
  EXPECT_NEAR(u.tv_uniform, 0.0, 1e-12);
  EXPECT_NEAR(u.entropy, std::log(5.0), 1e-12);
  EXPECT_EQ(u.coverage, 5);
  EXPECT_NEAR(u.mean_max_prob, 0.68, 1e-6);
  auto all_one = class_histogram_from_labels(torch::zeros({50}, torch::kInt64), 10);
  EXPECT_NEAR(all_one.tv_uniform, 0.9, 1e-12);  // the maximum, 1 - 1/K
  EXPECT_THROW(class_histogram_from_labels(torch::tensor({0, 10}), 10), Error);
}

// KL(p_θ ‖ p_ref) by PF-ODE likelihoods of the exact Gaussian "models" against the closed form.
TEST(EvalKl, PfOdeMatchesGaussianClosedForm) {
  diffusion::NoiseSchedule s;
  auto mu_p = torch::tensor({1.0, -0.5}, torch::kFloat64), mu_r = torch::tensor({0.0, 0.3}, torch::kFloat64);
  const double sig_p = 0.7, sig_r = 1.1;
  auto policy = gaussian_model(s, mu_p, sig_p), ref = gaussian_model(s, mu_r, sig_r);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t n = 400;
  auto x_T = torch::randn({n, 2}, gen, torch::kFloat64);
  PfOdeKlOptions o;
  o.steps = 333;
  auto est = pfode_kl(policy, s, ref, s, x_T, {}, o);
  // The per-sample log ratio against the exact densities at the same samples (no Monte Carlo error).
  double exact_mc = 0;
  for (int64_t i = 0; i < n; ++i)
    exact_mc += gaussian_log_prob(est.samples.to(torch::kFloat64), mu_p, sig_p, i) -
                gaussian_log_prob(est.samples.to(torch::kFloat64), mu_r, sig_r, i);
  exact_mc /= double(n);
  const double truth = gaussian_kl(mu_p, sig_p, mu_r, sig_r);
  std::printf("PF-ODE KL %.4f ± %.4f; exact log ratio on the same samples %.4f; closed form %.4f\n", est.kl.mean,
              est.kl.se, exact_mc, truth);
  EXPECT_NEAR(est.kl.mean, exact_mc, 0.01);
  EXPECT_NEAR(est.kl.mean, truth, 4 * est.kl.se + 0.01);
  EXPECT_LT(est.kl.se, 0.1);
  // The samples come from the policy: their mean is close to mu_p.
  EXPECT_LT((est.samples.to(torch::kFloat64).mean(0) - mu_p).abs().max().item<double>(), 0.15);
  // A model against itself: exactly 0.
  auto self = pfode_log_ratio(policy, s, policy, s, est.samples.to(torch::kFloat64).narrow(0, 0, 16), {}, o);
  EXPECT_EQ(self.abs().max().item<double>(), 0.0);
}

// Path KL: 0 for identical models; for ε_ref = ε_θ + Δ (constant) every DDPM step contributes exactly
// (c_x0 sqrt(1-ᾱ_t)/sqrt(ᾱ_t))² ‖Δ‖² / (2 σ_t²), independently of the trajectory.
TEST(EvalKl, PathKlZeroForIdenticalAndClosedFormForConstantOffset) {
  diffusion::NoiseSchedule s;
  auto mu = torch::tensor({1.0, -0.5}, torch::kFloat64);
  auto policy = gaussian_model(s, mu, 0.7);
  auto delta = torch::tensor({0.03, -0.02}, torch::kFloat64);
  Denoiser shifted = [&](const torch::Tensor& x, const torch::Tensor& t, const data::Condition& c) {
    return policy(x, t, c) + delta;
  };
  diffusion::SamplerConfig sc;
  sc.kind = "ddpm";
  sc.num_inference_steps = 50;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  auto x_T = torch::randn({64, 2}, gen, torch::kFloat64);
  auto same = path_kl(policy, policy, s, sc, x_T, at::make_generator<at::CPUGeneratorImpl>(2));
  EXPECT_EQ(same.per_sample.abs().max().item<double>(), 0.0);
  EXPECT_LT((same.samples.to(torch::kFloat64).mean(0) - mu).abs().max().item<double>(), 0.3);  // really sampled

  auto diff = path_kl(policy, shifted, s, sc, x_T, at::make_generator<at::CPUGeneratorImpl>(2), {}, 16);
  diffusion::DiscreteSampler sampler(s, sc);
  double expected = 0;
  for (size_t i = 0; i < sampler.timesteps().size(); ++i) {
    const int64_t t = sampler.timesteps()[i], prev = sampler.prev_timestep(i);
    if (t == 0) continue;  // deterministic last step
    const double a_t = s.alpha_bar(t), a_prev = prev >= 0 ? s.alpha_bar(prev) : 1.0, beta = 1 - a_t / a_prev;
    const double c_x0 = std::sqrt(a_prev) * beta / (1 - a_t), var = (1 - a_prev) / (1 - a_t) * beta;
    const double c = c_x0 * std::sqrt(1 - a_t) / std::sqrt(a_t);
    expected += c * c * delta.pow(2).sum().item<double>() / (2 * var);
  }
  std::printf("path KL with constant offset: %.6f (closed form %.6f)\n", diff.kl.mean, expected);
  EXPECT_GT(diff.kl.mean, 0.0);
  // The sampler computes its step coefficients in float32, as diffusers' schedulers do (measured: 2.6e-6 relative).
  EXPECT_NEAR(diff.kl.mean, expected, 1e-5 * expected + 1e-9);
  EXPECT_NEAR(diff.kl.se, 0.0, 1e-9);  // the same for every trajectory

  // A different model (other mean): positive and trajectory dependent.
  auto other = gaussian_model(s, torch::tensor({0.0, 0.0}, torch::kFloat64), 1.0);
  auto d2 = path_kl(policy, other, s, sc, x_T, at::make_generator<at::CPUGeneratorImpl>(2));
  EXPECT_GT(d2.kl.mean, 10 * d2.kl.se);
  // DDIM with eta = 0 has no path density.
  sc.kind = "ddim";
  EXPECT_THROW(path_kl(policy, other, s, sc, x_T, at::make_generator<at::CPUGeneratorImpl>(2)), Error);
  sc.eta = 1.0;
  EXPECT_GT(path_kl(policy, other, s, sc, x_T, at::make_generator<at::CPUGeneratorImpl>(2)).kl.mean, 0.0);
}

TEST(EvalImplicit, IdenticalModelsTieAndABetterPolicyRanksPairs) {
  diffusion::NoiseSchedule s;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
  PreferencePairs pairs;
  pairs.winner = (torch::randn({200, 2}, gen, torch::kFloat32) * 0.5 + torch::tensor({2.0f, 0.0f}));
  pairs.loser = (torch::randn({200, 2}, gen, torch::kFloat32) * 0.5 + torch::tensor({-2.0f, 0.0f}));
  auto ref = gaussian_model(s, torch::tensor({0.0, 0.0}), 2.0);
  auto policy = gaussian_model(s, torch::tensor({2.0, 0.0}), 0.5);
  auto tie = implicit_accuracy(ref, ref, s, pairs, 2, 0);
  EXPECT_DOUBLE_EQ(tie.accuracy.mean, 0.5);
  EXPECT_DOUBLE_EQ(tie.logit.mean, 0.0);
  auto good = implicit_accuracy(policy, ref, s, pairs, 8, 0, 1.0, 64);
  auto bad = implicit_accuracy(ref, policy, s, pairs, 8, 0);
  std::printf("implicit accuracy: aligned policy %.3f ± %.3f, swapped %.3f\n", good.accuracy.mean, good.accuracy.se,
              bad.accuracy.mean);
  EXPECT_GT(good.accuracy.mean, 0.85);
  EXPECT_LT(bad.accuracy.mean, 0.15);
  EXPECT_GT(good.logit.mean, 0.0);
  // Independent of the batch size (all draws happen before batching).
  auto good_b = implicit_accuracy(policy, ref, s, pairs, 8, 0, 1.0, 200);
  EXPECT_NEAR((good.logits - good_b.logits).abs().max().item<double>(), 0.0, 1e-9);
}

TEST(EvalImplicit, PairsWithAPromptTableGetEachPairsEmbedding) {
  auto path = (fs::temp_directory_path() / ("dualign-eval-recipe-" + std::to_string(::getpid()) + ".h5")).string();
  test::write_recipe_pairs(path, 7);
  auto pairs = read_preference_pairs(path, 6);
  fs::remove(path);
  ASSERT_EQ(pairs.cond.text.sizes(), (std::vector<int64_t>{6, 3, 4}));
  EXPECT_EQ(pairs.winner.scalar_type(), torch::kFloat32);
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(pairs.winner[i].mean().item<double>(), static_cast<double>(i));  // the posterior mean
    EXPECT_EQ(pairs.cond.text[i].mean().item<double>(), static_cast<double>(i % test::kRecipeCaptions + 1));
  }
}

TEST(EvalPng, GridLayoutAndValidFile) {
  auto images = torch::full({5, 1, 4, 3}, -1.0f);
  images[1].fill_(1.0f);
  GridOptions o;
  o.nrow = 2;
  o.padding = 1;
  o.pad_value = 0.5;
  auto grid = make_grid(images, o);
  ASSERT_EQ(grid.sizes(), torch::IntArrayRef({3 * 5 + 1, 2 * 4 + 1, 1}));
  EXPECT_EQ(grid[0][0][0].item<uint8_t>(), 128);  // padding
  EXPECT_EQ(grid[1][1][0].item<uint8_t>(), 0);    // image 0 (black)
  EXPECT_EQ(grid[1][5][0].item<uint8_t>(), 255);  // image 1 (white), second column
  EXPECT_EQ(grid[11][5][0].item<uint8_t>(), 128); // the empty sixth cell
  EXPECT_THROW(make_grid(torch::zeros({2, 2, 4, 4})), Error);

  TempDir tmp;
  const auto path = (tmp.path / "grid.png").string();
  write_image_grid(path, torch::rand({7, 3, 8, 8}) * 2 - 1, o);
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(bytes.size(), 33u);
  const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  EXPECT_TRUE(std::equal(signature, signature + 8, bytes.begin()));
  auto be32 = [&](size_t at) { return (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]; };
  EXPECT_EQ(be32(16), 2 * 9 + 1);  // IHDR width
  EXPECT_EQ(be32(20), 4 * 9 + 1);  // IHDR height
  EXPECT_EQ(bytes[25], 2);         // colour type RGB
  write_scatter_png((tmp.path / "points.png").string(), torch::randn({100, 2}), torch::randn({50, 2}));
  EXPECT_TRUE(fs::file_size(tmp.path / "points.png") > 100);
  EXPECT_THROW(write_png((tmp.path / "no_dir" / "x.png").string(), grid), Error);
  // The in-memory encoding (TensorBoard images) is the file's bytes.
  write_png((tmp.path / "grid2.png").string(), grid);
  std::ifstream in2(tmp.path / "grid2.png", std::ios::binary);
  EXPECT_EQ(encode_png(grid), std::string((std::istreambuf_iterator<char>(in2)), {}));
}

TEST(EvalSamplesIo, RoundTripAndFormatCheck) {
  TempDir tmp;
  SamplesFile s;
  s.samples = torch::randn({6, 2});
  s.class_id = torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64);
  s.prompts = {"a", "b", "c", "a", "b", "c"};
  s.prompt_index = torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64);
  s.image_index = torch::tensor({0, 0, 0, 1, 1, 1}, torch::kInt64);
  s.seed = torch::tensor(std::vector<int64_t>{int64_t{1} << 62, 5, 6, 7, 8, 9}, torch::kInt64);
  s.text_attrs["model"] = "/x/ckpt.h5";
  s.int_attrs["steps"] = 25;
  s.float_attrs["eta"] = 0.5;
  const auto path = (tmp.path / "s.h5").string();
  write_samples(path, s);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto r = read_samples(path);
  EXPECT_TRUE(torch::equal(r.samples, s.samples));
  EXPECT_TRUE(torch::equal(r.class_id, s.class_id));
  EXPECT_EQ(r.prompts, s.prompts);
  EXPECT_TRUE(torch::equal(r.image_index, s.image_index));
  EXPECT_TRUE(torch::equal(r.seed, s.seed));  // 63-bit seeds survive
  EXPECT_EQ(r.text_attrs.at("model"), "/x/ckpt.h5");
  EXPECT_EQ(r.text_attrs.at("format"), "samples");
  EXPECT_EQ(r.int_attrs.at("steps"), 25);
  EXPECT_DOUBLE_EQ(r.float_attrs.at("eta"), 0.5);
  s.prompts.pop_back();
  EXPECT_THROW(write_samples(path, s), Error);
}

TEST(EvalSamplesIo, PromptsFile) {
  TempDir tmp;
  const auto path = (tmp.path / "prompts.h5").string();
  {
    auto f = h5::File::create(path);
    f.set_attr("/", "format", "prompts");
    h5::write_tensor(f, "text_embedding", torch::randn({3, 5, 8}));
    f.write_strings("prompt", {"a cat", "a dog", "a fish"});
  }
  auto p = read_prompts(path);
  EXPECT_EQ(p.text_embedding.sizes(), torch::IntArrayRef({3, 5, 8}));
  EXPECT_EQ(p.prompt[2], "a fish");
  EXPECT_FALSE(p.negative_text_embedding.defined());
  {
    auto f = h5::File::open(path, h5::Mode::read_write);
    h5::write_tensor(f, "negative_text_embedding", torch::randn({1, 5, 8}));
  }
  EXPECT_EQ(read_prompts(path).negative_text_embedding.sizes(), torch::IntArrayRef({1, 5, 8}));
  {
    auto f = h5::File::create(path);
    h5::write_tensor(f, "text_embedding", torch::randn({3, 5, 8}));
    f.write_strings("prompt", {"a cat", "a dog", "a fish"});
    h5::write_tensor(f, "negative_text_embedding", torch::randn({2, 5, 8}));  // neither 1 nor 3 rows
  }
  EXPECT_THROW(read_prompts(path), Error);
  {
    auto f = h5::File::create(path);
    h5::write_tensor(f, "text_embedding", torch::randn({3, 5, 8}));
    f.write_strings("prompt", {"a cat", "a dog"});
  }
  try {
    read_prompts(path);
    FAIL() << "count mismatch not reported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prompts.h5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_prompts((tmp.path / "missing.h5").string()), Error);
}
