// Guided sampling vs diffusers' StableDiffusionPipeline (fixtures: make_sampling_fixtures.py): a tiny random
// text-conditional UNet, the same prompt / negative prompt embeddings, x_T and per-row generators, guidance 7.5,
// every scheduler case at 20 and 50 steps; and StableDiffusionXLPipeline on a tiny text_time UNet with pooled
// embeddings and time ids, guidance 5, three scheduler cases at 20 steps. dualign runs its own path end to end: the UNet loaded from the
// diffusers directory, the scheduler read from SD-1.5's scheduler_config.json like SchedulerClass.from_config,
// eval::sample_rows with one generator per row.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "diffusion/scheduler.h"
#include "diffusion/scheduler_json.h"
#include "eval/sampling.h"
#include "models/safetensors.h"
#include "models/score_model.h"
#include "parity_util.h"

using namespace dualign;

namespace {
std::string sampling_dir() {
  const char* d = std::getenv("DUALIGN_SAMPLING_PARITY_DIR");
  if (!d) throw std::runtime_error("DUALIGN_SAMPLING_PARITY_DIR is not set (run through ctest: a fixture test makes it)");
  return d;
}

// Samples every case of `dir`'s cases.json through eval::sample_rows and compares with the pipeline's latents.
void check_cases(const std::string& dir, const std::string& scheduler_config, const data::Condition& cond,
                 const data::Condition& uncond) {
  auto fx = models::load_safetensors(dir + "/sampling.safetensors");
  nlohmann::json manifest;
  std::ifstream(dir + "/cases.json") >> manifest;
  auto model = models::load_diffusers_score_model(dir + "/unet", torch::kCPU);
  std::vector<int64_t> seeds;
  for (int64_t i = 0; i < fx.at("seeds").numel(); ++i) seeds.push_back(fx.at("seeds")[i].item<int64_t>());

  // x_T: the first draw of each row's generator, bit for bit what torch.randn gave diffusers
  for (size_t r = 0; r < seeds.size(); ++r) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(uint64_t(seeds[r]));
    EXPECT_TRUE(torch::equal(at::normal(0.0, 1.0, {1, 4, 16, 16}, gen), fx.at("x_T").narrow(0, int64_t(r), 1)));
  }
  double worst = 0;
  for (const auto& [name, c] : manifest["cases"].items()) {
    auto spec = diffusion::read_scheduler_config(scheduler_config, c["kind"].get<std::string>(),
                                                 c["overrides"].get<std::vector<std::string>>());
    diffusion::NoiseSchedule schedule(spec.schedule);
    for (int64_t steps : manifest["steps"].get<std::vector<int64_t>>()) {
      eval::GuidedSampling g;
      g.sampler = spec.sampler;
      g.sampler.num_inference_steps = steps;
      g.sampler.eta = c["eta"].get<double>();
      g.guidance_scale = manifest["guidance_scale"].get<double>();
      g.guidance_rescale = c["guidance_rescale"].get<double>();
      const auto key = name + "." + std::to_string(steps);
      // the same timesteps, in the same order
      auto scheduler = diffusion::make_scheduler(schedule, g.sampler);
      const auto& ts = fx.at("timesteps." + key);
      ASSERT_EQ(int64_t(scheduler->num_steps()), ts.numel()) << key;
      // integer timesteps exactly; Euler's fractional Karras timesteps to 1e-6 relative (numpy's float32 log of
      // the σ table and the C library's may differ in the last bit)
      for (int64_t i = 0; i < ts.numel(); ++i) {
        const double theirs_t = ts[i].item<double>(), ours_t = scheduler->model_timestep(size_t(i));
        if (scheduler->integer_timesteps()) EXPECT_EQ(ours_t, theirs_t) << key << " step " << i;
        else EXPECT_NEAR(ours_t, theirs_t, 1e-6 * std::max(1.0, theirs_t)) << key << " step " << i;
      }
      auto ours = eval::sample_rows(*model, schedule, g, seeds, cond, uncond);
      const auto& theirs = fx.at("latents." + key);
      const double diff = max_abs(ours, theirs);
      worst = std::max(worst, diff);
      std::printf("%-24s %2lld steps: max abs diff %.2e (|latents| max %.1f)\n", name.c_str(), (long long)steps, diff,
                  theirs.abs().max().item<double>());
      EXPECT_LE(diff, 1e-4) << key;
    }
  }
  std::printf("worst max abs latent difference over all cases: %.2e\n", worst);
}

}  // namespace

TEST(SamplingParity, GuidedPipelineEveryScheduler) {
  const auto dir = sampling_dir();
  auto fx = models::load_safetensors(dir + "/sampling.safetensors");
  data::Condition cond, uncond;
  cond.text = fx.at("prompt_embeds");
  uncond.text = fx.at("negative_prompt_embeds");
  check_cases(dir, dir + "/sd15_scheduler_config.json", cond, uncond);
}

// StableDiffusionXLPipeline: the unconditional branch gets the negative pooled embedding and the same time ids.
TEST(SamplingParity, GuidedSdxlPipeline) {
  const auto dir = sampling_dir() + "/sdxl";
  auto fx = models::load_safetensors(dir + "/sampling.safetensors");
  data::Condition cond, uncond;
  cond.text = fx.at("prompt_embeds");
  cond.text_pooled = fx.at("pooled_prompt_embeds");
  cond.time_ids = fx.at("time_ids");
  uncond.text = fx.at("negative_prompt_embeds");
  uncond.text_pooled = fx.at("negative_pooled_prompt_embeds");
  uncond.time_ids = fx.at("time_ids");
  check_cases(dir, dir + "/scheduler_config.json", cond, uncond);
}
