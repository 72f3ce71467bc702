// Drawing samples from a score model and loading a trained model for sampling: the shared path of
// end-of-training evaluation, `dualign sample`, `dualign eval` and the preference-pair builder.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diffusion/sampler.h"
#include "diffusion/schedule.h"
#include "models/score_model.h"

namespace dualign::config {
class Section;
}

namespace dualign::eval {

// A trained model with the noise schedule it was trained with (both from its checkpoint's config).
struct TrainedModel {
  std::shared_ptr<models::ScoreModel> model;
  std::unique_ptr<diffusion::NoiseSchedule> schedule;
  std::string checkpoint;  // the resolved checkpoint file
};
// `checkpoint`: a checkpoint file, a ckpt dir or a run dir. EMA weights when present and prefer_ema.
TrainedModel load_trained_model(const std::string& checkpoint, const torch::Device& device, bool prefer_ema = true);

struct SampleSpec {
  diffusion::SamplerConfig sampler;  // kind, steps, eta ...
  int64_t batch_size = 256;          // rows per model call (memory bound)
  diffusion::GuidanceFn guidance;    // optional additive ε correction
};

// n samples from x_T = N(0, I) drawn from `seed` (the same seed gives the same x_T for any model with the same
// sample shape: that is what paired win rates compare). `cond` (optional) has n rows. No gradients; the model
// is put back in its previous train/eval mode. Returns CPU float32 [n, sample_shape...].
torch::Tensor sample(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule, const SampleSpec& spec,
                     int64_t n, uint64_t seed, const data::Condition& cond = {});

// ---- `dualign sample`: any scheduler, classifier-free guidance, one seed per sample -------------------------

// A model to sample from: a dualign checkpoint (file, ckpt dir or run dir) or a diffusers directory (a pipeline
// root with unet/ and scheduler/, or a bare UNet directory).
struct SamplingModel {
  std::shared_ptr<models::ScoreModel> model;
  std::string source;   // the checkpoint file or the diffusers directory
  bool diffusers = false;
  std::optional<diffusion::ScheduleConfig> trained_schedule;  // a checkpoint's `diffusion` section
  // The scheduler_config.json that comes with the model: the pipeline's scheduler/, or for a checkpoint that of
  // the diffusers model it was fine-tuned from (model.pretrained), when that directory is here. "" if none.
  std::string scheduler_config;
};
SamplingModel load_sampling_model(const std::string& path, const torch::Device& device, bool prefer_ema = true);

struct SchedulerChoice {
  std::string scheduler_config;        // a scheduler_config.json (or a directory with one): wins over the model's
  std::string kind;                    // "": the config file's class (ddim when there is no file)
  std::vector<std::string> overrides;  // key=value in diffusers' names, e.g. use_karras_sigmas=true
  int64_t steps = 50;
  double eta = 0.0;                    // ddim only
};
struct ResolvedScheduler {
  diffusion::ScheduleConfig schedule;
  diffusion::SamplerConfig sampler;
  std::string source;  // where the settings came from (a file, or the checkpoint's config and dualign's defaults)
  std::string json;    // the effective settings as a diffusers scheduler_config.json
};
// The scheduler settings: a scheduler_config.json (explicit, else the model's own) read like diffusers'
// from_config; without one, the checkpoint's noise schedule with dualign's DDIM/DDPM defaults or diffusers'
// defaults of the other kinds. A file whose betas differ from the ones the checkpoint was trained with is an error.
ResolvedScheduler resolve_scheduler(const SamplingModel& model, const SchedulerChoice& choice);

// A dualign checkpoint (as load_trained_model) or a diffusers directory, with the noise schedule it samples with
// (a diffusers model's from its scheduler config; `checkpoint` is then the directory).
TrainedModel load_model_with_schedule(const std::string& path, const torch::Device& device);

struct GuidedSampling {
  diffusion::SamplerConfig sampler;
  double guidance_scale = 1.0;    // > 1: classifier-free guidance (diffusers' guidance_scale)
  double guidance_rescale = 0.0;  // diffusers' guidance_rescale φ
};

// One batch of samples, each row with its own seed: row r starts from x_T = randn([1, ...], generator(seeds[r]))
// and draws any sampler noise from that generator too, as StableDiffusionPipeline does with one torch.Generator
// per image; so a row's result does not depend on the other rows of its batch beyond float rounding. `cond` has
// one row per seed; `uncond` (same rows) is the unconditional branch, required when guidance_scale > 1.
// No gradients; the model's train/eval mode is restored. Returns CPU float32 [rows, sample_shape...].
torch::Tensor sample_rows(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule,
                          const GuidedSampling& spec, const std::vector<int64_t>& seeds, const data::Condition& cond,
                          const data::Condition& uncond = {});

}  // namespace dualign::eval
