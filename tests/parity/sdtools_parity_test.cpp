// Parity of the Stable Diffusion toolchain with diffusers / transformers / open_clip and the constrained-alignment
// reference code, on the tiny random models of make_sdtools_fixtures.py: AutoencoderKL encode/decode outputs and
// gradients (plain, checkpointed, tiled + sliced), CLIP image embeddings and gradients, the CLIP reward models and
// the image statistics built through make_reward.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>

#include "config/config.h"
#include "models/clip_preprocess.h"
#include "models/clip_vision.h"
#include "models/diffusers_io.h"
#include "models/vae.h"
#include "rewards/image_statistics.h"
#include "rewards/reward.h"
#include "parity_util.h"

namespace dualign {
namespace {

constexpr double kTol = 1e-4;

// max |a − b| ≤ tol, printed so the run log shows the measured agreement, not only that it passed.
void expect_close(const std::string& what, const torch::Tensor& a, const torch::Tensor& b, double tol = kTol) {
  const double d = max_abs(a, b);
  std::printf("parity %-60s max|diff| %.3g\n", what.c_str(), d);
  EXPECT_LE(d, tol) << what;
}

models::TensorMap io(const std::string& name) { return models::load_safetensors(parity_dir() + "/" + name + "_io.safetensors"); }

// Back-propagates Σ weights · out into `input`, then compares the output and the input gradient with the fixture's.
void expect_weighted_backward(const std::string& tag, const torch::Tensor& out, const torch::Tensor& weights,
                              const torch::Tensor& input, const torch::Tensor& expected_out,
                              const torch::Tensor& expected_grad) {
  (out * weights).sum().backward();
  expect_close(tag, out, expected_out);
  expect_close(tag + " d / d input", input.grad(), expected_grad);
}

std::unique_ptr<rewards::Reward> reward_from(const std::string& yaml) {
  config::Composed c;
  c.config = c.resolved = YAML::Load(yaml);
  config::Config cfg(std::move(c));
  return rewards::make_reward(cfg.section("reward"), torch::kCPU);
}

class VaeParity : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(VaeParity, EncodeDecodeOutputsAndGradients) {
  const auto& [name, checkpointing] = GetParam();
  auto vae = models::load_diffusers_vae(parity_dir() + "/" + name);
  vae->set_gradient_checkpointing(checkpointing);
  auto t = io(name);
  auto x = t.at("images").clone().requires_grad_(true);
  auto post = vae->encode(x);
  auto decoded = vae->decode(post.sample(t.at("eps")));
  auto loss = (decoded - t.at("target")).pow(2).mean() + 0.1 * post.mean.pow(2).mean() + 0.1 * post.logvar.mean();
  loss.backward();
  const auto tag = name + (checkpointing ? " ckpt " : " ");
  expect_close(tag + "encode mean", post.mean, t.at("mean"));
  expect_close(tag + "encode logvar", post.logvar, t.at("logvar"));
  expect_close(tag + "decode", decoded, t.at("decoded"));
  expect_close(tag + "d loss / d images", x.grad(), t.at("grad_images"));
  double worst = 0;
  for (const auto& p : vae->named_parameters()) {
    ASSERT_TRUE(t.count("grad." + p.key())) << p.key();
    const double d = max_abs(p.value().grad(), t.at("grad." + p.key()));
    EXPECT_LE(d, kTol) << p.key();
    worst = std::max(worst, d);
  }
  std::printf("parity %-60s max|diff| %.3g\n", (tag + "d loss / d every parameter").c_str(), worst);
}

TEST_P(VaeParity, TiledSlicedDecodeOfScaledLatents) {
  const auto& [name, checkpointing] = GetParam();
  auto vae = models::load_diffusers_vae(parity_dir() + "/" + name);
  for (auto& p : vae->parameters()) p.set_requires_grad(false);
  vae->set_gradient_checkpointing(checkpointing);
  vae->set_tiling(true);
  vae->set_slicing(true);
  auto t = io(name);
  auto latents = t.at("tiled_latents").clone().requires_grad_(true);
  ASSERT_GT(latents.size(3), vae->config().tile_latent_size());  // the tiled path runs
  expect_weighted_backward(name + (checkpointing ? " ckpt " : " ") + "tiled+sliced decode of latents",
                           vae->decode_latents(latents), t.at("tiled_weights"), latents, t.at("tiled_decoded"),
                           t.at("tiled_grad_latents"));
}

INSTANTIATE_TEST_SUITE_P(Sdtools, VaeParity,
                         ::testing::Combine(::testing::Values("vae_sd_like", "vae_unusual"), ::testing::Bool()));

class ClipParity : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(ClipParity, ImageEmbeddingsAndInputGradients) {
  const auto& [name, checkpointing] = GetParam();
  auto loaded = models::load_clip_vision(parity_dir() + "/" + name);
  auto& model = loaded.model;
  model->set_gradient_checkpointing(checkpointing);
  auto t = io(name);
  auto pixels = t.at("pixel_values").clone().requires_grad_(true);
  expect_weighted_backward(name + (checkpointing ? " ckpt " : " ") + "image_embeds of pixel_values",
                           model->forward(pixels), t.at("weights"), pixels, t.at("image_embeds"),
                           t.at("grad_pixel_values"));
}

INSTANTIATE_TEST_SUITE_P(Sdtools, ClipParity,
                         ::testing::Combine(::testing::Values("clip_quick_gelu", "clip_gelu"), ::testing::Bool()));

TEST(RewardParity, ClipPreprocessingMatchesTransformersTorchvisionProcessor) {
  auto t = io("rewards");
  auto p = models::ClipPreprocess::for_tower(32, nullptr);
  expect_close("CLIP preprocessing (40x52 -> 32, bicubic, crop)", p(t.at("images")), t.at("clip_pixel_values"));
}

TEST(RewardParity, ClipRewardModelsEqualThePythonFormulas) {
  const auto d = parity_dir();
  auto t = io("rewards");
  const auto& images = t.at("images");
  const std::pair<std::string, std::string> cases[] = {
      {"pickscore", "{kind: pickscore, model: " + d + "/tiny_clip, text_embeddings: " + d +
                        "/tiny_clip_prompts.safetensors, prompt: 1}"},
      {"clip_score", "{kind: clip_score, model: " + d + "/tiny_clip, text_embeddings: " + d +
                         "/tiny_clip_prompts.safetensors, prompt: 1}"},
      {"aesthetic", "{kind: aesthetic, model: " + d + "/tiny_clip, head: " + d + "/aesthetic_head.safetensors}"},
      {"hpsv2", "{kind: hpsv2, visual: " + d + "/tiny_hps_visual.safetensors, text_embeddings: " + d +
                    "/tiny_hps_prompts.safetensors, prompt: 0}"},
  };
  for (const auto& [name, spec] : cases) {
    auto r = reward_from("reward: " + spec);
    auto x = images.clone().requires_grad_(true);
    auto scores = r->score(x, {});
    expect_close(name + " score", scores, t.at(name));
    scores.sum().backward();  // differentiable in the image (clip_score is flat where it clamps cos < 0 to 0)
    ASSERT_TRUE(x.grad().defined()) << name;
    if (scores.abs().sum().item<double>() > 0) EXPECT_GT(x.grad().abs().sum().item<double>(), 0) << name;
  }
}

TEST(RewardParity, ImageStatisticsEqualTheReferenceCode) {
  auto t = io("rewards");
  for (const char* name : {"brightness", "global_contrast", "local_contrast", "saturation", "colorfulness"}) {
    auto r = reward_from(std::string("reward: {kind: ") + name + "}");
    auto x = t.at("images").clone().requires_grad_(true);
    auto scores = r->score(x, {});
    scores.sum().backward();
    expect_close(std::string(name), scores, t.at(std::string("stat.") + name), 1e-6);
    expect_close(std::string(name) + " gradient", x.grad(), t.at(std::string("stat_grad.") + name), 1e-6);
  }
}

TEST(RewardParity, LatentRewardDecodesOnceAndBackPropagatesThroughTheDecoder) {
  const auto d = parity_dir();
  auto t = io("vae_sd_like");
  auto latents = t.at("eps").clone();  // [2, 4, h, w]
  auto vae = models::load_diffusers_vae(d + "/vae_sd_like");
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = rewards::saturation(vae->decode_latents(latents));
  }
  std::vector<torch::Tensor> grads;
  for (bool checkpointing : {false, true}) {
    auto r = reward_from("reward: {kind: saturation, latents: {vae: " + d + "/vae_sd_like, gradient_checkpointing: " +
                         (checkpointing ? "true" : "false") + "}, zscore: {mean: 0.25, std: 0.5}}");
    auto x = latents.clone().requires_grad_(true);
    auto scores = r->score(x, {});
    EXPECT_LE(max_abs(scores, (expected - 0.25) / (0.5 + 1e-8)), 1e-6) << r->describe();
    scores.sum().backward();
    ASSERT_TRUE(x.grad().defined());
    grads.push_back(x.grad());
  }
  EXPECT_GT(grads[0].abs().sum().item<double>(), 0);
  EXPECT_LE(max_abs(grads[1], grads[0]), 1e-6);  // checkpointed recomputation gives the same gradient
}

}  // namespace
}  // namespace dualign
