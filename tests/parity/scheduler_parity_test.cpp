// DDPM / DDIM vs diffusers: alphas_cumprod bit-exact, 10-step trajectories from fixed noise within 1e-5.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "diffusion/sampler.h"
#include "diffusion/schedule.h"
#include "models/safetensors.h"
#include "parity_util.h"

using namespace dualign::diffusion;

TEST(SchedulerParity, AlphasCumprodExact) {
  auto fx = dualign::models::load_safetensors(parity_dir() + "/schedulers.safetensors");
  std::vector<std::pair<std::string, ScheduleConfig>> kinds{
      {"linear", {.kind = "linear"}},
      {"scaled_linear", {.kind = "scaled_linear", .beta_start = 0.00085, .beta_end = 0.012}},
      {"squaredcos_cap_v2", {.kind = "squaredcos_cap_v2"}}};
  for (const auto& [name, cfg] : kinds) {
    NoiseSchedule s(cfg);
    EXPECT_TRUE(torch::equal(s.betas(), fx.at("betas." + name))) << name << " max diff "
                                                                  << max_abs(s.betas(), fx.at("betas." + name));
    EXPECT_TRUE(torch::equal(s.alphas_cumprod(), fx.at("alphas_cumprod." + name)))
        << name << " max diff " << max_abs(s.alphas_cumprod(), fx.at("alphas_cumprod." + name));
  }
}

namespace {
// the same deterministic stand-in model as make_unet_fixtures.py
torch::Tensor model_fn(const torch::Tensor& x, int64_t t) { return 0.5 * x + 0.1 * torch::sin(x * (float(t) / 100.0f)); }
}  // namespace

TEST(SchedulerParity, TenStepTrajectories) {
  auto fx = dualign::models::load_safetensors(parity_dir() + "/schedulers.safetensors");
  struct Case { std::string name; ScheduleConfig schedule; SamplerConfig sampler; };
  std::vector<Case> cases{
      {"ddpm_linear_clip", {.kind = "linear"}, {.kind = "ddpm", .num_inference_steps = 10, .clip_sample = true}},
      {"ddim_sd", {.kind = "scaled_linear", .beta_start = 0.00085, .beta_end = 0.012},
       {.kind = "ddim", .num_inference_steps = 10, .steps_offset = 1, .set_alpha_to_one = false}},
      {"ddim_cos_v_eta1", {.kind = "squaredcos_cap_v2", .prediction = "v_prediction"},
       {.kind = "ddim", .num_inference_steps = 10, .eta = 1.0}},
      {"ddim_trailing", {.kind = "linear"}, {.kind = "ddim", .num_inference_steps = 10, .timestep_spacing = "trailing"}},
  };
  for (const auto& c : cases) {
    NoiseSchedule s(c.schedule);
    DiscreteSampler sampler(s, c.sampler);
    auto ts = fx.at("timesteps." + c.name);
    ASSERT_EQ(int64_t(sampler.timesteps().size()), ts.numel()) << c.name;
    for (int64_t i = 0; i < ts.numel(); ++i) EXPECT_EQ(sampler.timesteps()[i], ts[i].item<int64_t>()) << c.name;
    auto traj = fx.at("trajectory." + c.name), noise = fx.at("noise." + c.name);
    auto x = traj[0].clone();
    double worst = 0;
    for (size_t i = 0; i < sampler.timesteps().size(); ++i) {
      auto out = model_fn(x, sampler.timesteps()[i]);
      x = sampler.step(i, x, out, {}, sampler.step_needs_noise(i) ? noise[int64_t(i)] : torch::Tensor());
      worst = std::max(worst, max_abs(x, traj[int64_t(i) + 1]));
    }
    std::printf("%s: worst trajectory max abs diff over 10 steps %.3e (|x| max %.2f)\n", c.name.c_str(), worst,
                traj.abs().max().item<double>());
    EXPECT_LT(worst, 1e-5) << c.name;
  }
}
