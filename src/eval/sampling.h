// Drawing samples from a score model and loading a trained model for sampling: the shared path of
// end-of-training evaluation, `dualign sample`, `dualign eval` and the preference-pair builder.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

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

}  // namespace dualign::eval
