// EulerDiscreteScheduler and EulerAncestralDiscreteScheduler (Karras et al. 2022, k-diffusion's sample_euler /
// sample_euler_ancestral) on σ = sqrt((1 - ᾱ) / ᾱ): x_σ = x0 + σ ε, the model sees x / sqrt(σ² + 1) at a
// fractional timestep. Timesteps and σ follow diffusers' set_timesteps (float32), the step arithmetic is float32
// like diffusers' 0-d tensors, so the two agree to rounding. s_churn is 0 (diffusers' pipeline default).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "diffusion/scheduler_kinds.h"
#include "diffusion/sigmas.h"
#include "util/error.h"

namespace dualign::diffusion {
namespace {

// diffusers' Euler timesteps for a spacing, descending, as float32 values.
std::vector<double> euler_timesteps(int64_t n_train, int64_t n, const std::string& spacing, int64_t steps_offset) {
  std::vector<double> ts;
  if (spacing == "linspace") {
    auto lin = numpy_linspace(0, double(n_train - 1), n);
    for (auto it = lin.rbegin(); it != lin.rend(); ++it) ts.push_back(double(float(*it)));
  } else if (spacing == "leading" || spacing == "trailing") {
    // integer-valued: the discrete schedulers' timesteps (leading adds steps_offset; trailing does not)
    for (auto t : inference_timesteps(n_train, n, spacing, spacing == "leading" ? steps_offset : 0))
      ts.push_back(double(t));
  } else {
    fail("sampler.timestep_spacing: expected leading | trailing | linspace, got '{}'", spacing);
  }
  return ts;
}

class EulerScheduler : public Scheduler {
 public:
  EulerScheduler(const NoiseSchedule& schedule, const SamplerConfig& config)
      : predicts_v_(schedule.predicts_v()), ancestral_(config.kind == "euler_ancestral") {
    DUALIGN_CHECK(!ancestral_ || !config.use_karras_sigmas,
                  "sampler euler_ancestral: use_karras_sigmas is not a setting of diffusers' "
                  "EulerAncestralDiscreteScheduler");
    const auto table = sigma_table(schedule);
    timesteps_ = euler_timesteps(schedule.num_train_timesteps(), config.num_inference_steps, config.timestep_spacing,
                                 config.steps_offset);
    auto sigmas = interp_sigmas(timesteps_, table);
    if (config.use_karras_sigmas) {
      sigmas = karras_sigmas(config.sigma_min.value_or(sigmas.back()), config.sigma_max.value_or(sigmas.front()),
                             config.num_inference_steps);
      for (size_t i = 0; i < sigmas.size(); ++i) timesteps_[i] = double(float(sigma_to_timestep(sigmas[i], table)));
    }
    for (double s : sigmas) sigmas_.push_back(float(s));
    if (config.final_sigmas_type == "zero" || ancestral_) {
      sigmas_.push_back(0.0f);
    } else if (config.final_sigmas_type == "sigma_min") {
      sigmas_.push_back(table.front());
    } else {
      fail("sampler.final_sigmas_type: expected zero | sigma_min, got '{}'", config.final_sigmas_type);
    }
    const float max_sigma = *std::max_element(sigmas_.begin(), sigmas_.end());
    const bool bare = config.timestep_spacing == "linspace" || config.timestep_spacing == "trailing";
    init_noise_sigma_ = bare ? max_sigma : std::sqrt(max_sigma * max_sigma + 1);
  }

  size_t num_steps() const override { return timesteps_.size(); }
  double model_timestep(size_t i) const override { return timesteps_[i]; }
  bool integer_timesteps() const override { return false; }
  double init_noise_sigma() const override { return init_noise_sigma_; }
  at::Tensor scale_model_input(const at::Tensor& x, size_t i) const override {
    const float s = sigmas_[i];
    return x / std::sqrt(s * s + 1);
  }
  bool needs_noise(size_t) const override { return ancestral_; }

  at::Tensor step(size_t i, const at::Tensor& out, const at::Tensor& x, const at::Tensor& noise) override {
    const float sigma = sigmas_[i], sigma_next = sigmas_[i + 1];
    at::Tensor x0;
    if (predicts_v_) {
      const float s2 = sigma * sigma + 1;
      x0 = out * (-sigma / std::sqrt(s2)) + x / s2;
    } else {
      x0 = x - out * sigma;
    }
    if (!ancestral_) {
      auto derivative = (x - x0) / sigma;
      return x + derivative * (sigma_next - sigma);
    }
    // ancestral: step down to σ_down, then add fresh noise of scale σ_up (σ_down² + σ_up² = σ_next²)
    const float sigma_up = std::sqrt(sigma_next * sigma_next * (sigma * sigma - sigma_next * sigma_next) / (sigma * sigma));
    const float sigma_down = std::sqrt(sigma_next * sigma_next - sigma_up * sigma_up);
    auto derivative = (x - x0) / sigma;
    auto prev = x + derivative * (sigma_down - sigma);
    DUALIGN_CHECK(noise.defined(), "euler_ancestral step {} needs noise", i);
    return prev + noise * sigma_up;
  }

 private:
  bool predicts_v_, ancestral_;
  std::vector<double> timesteps_;
  std::vector<float> sigmas_;
  float init_noise_sigma_ = 1;
};

}  // namespace

std::unique_ptr<Scheduler> make_euler_scheduler(const NoiseSchedule& schedule, const SamplerConfig& config) {
  return std::make_unique<EulerScheduler>(schedule, config);
}

}  // namespace dualign::diffusion
