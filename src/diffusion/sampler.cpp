#include "diffusion/sampler.h"

#include <torch/torch.h>

#include <cmath>

#include "util/error.h"

namespace dualign::diffusion {

std::vector<int64_t> inference_timesteps(int64_t n_train, int64_t n_steps, const std::string& spacing,
                                         int64_t steps_offset) {
  DUALIGN_CHECK(n_steps >= 1 && n_steps <= n_train,
                "sampler.num_inference_steps must be in [1, {}] (num_train_timesteps), got {}", n_train, n_steps);
  std::vector<int64_t> ts;
  if (spacing == "leading") {
    int64_t ratio = n_train / n_steps;
    for (int64_t i = n_steps - 1; i >= 0; --i) ts.push_back(i * ratio + steps_offset);
  } else if (spacing == "trailing") {
    // np.round(np.arange(n_train, 0, -n_train / n_steps)) - 1
    double ratio = double(n_train) / double(n_steps);
    const auto count = int64_t(std::ceil(double(n_train) / ratio));  // np.arange's length
    for (int64_t i = 0; i < count; ++i) ts.push_back(int64_t(std::nearbyint(double(n_train) - i * ratio)) - 1);
  } else if (spacing == "linspace") {
    // np.linspace(0, n_train - 1, n_steps).round()[::-1]
    for (int64_t i = n_steps - 1; i >= 0; --i) {
      double v = n_steps == 1 ? 0.0 : double(n_train - 1) * double(i) / double(n_steps - 1);
      ts.push_back(int64_t(std::nearbyint(v)));
    }
  } else {
    fail("sampler.timestep_spacing: expected leading | trailing | linspace, got '{}'", spacing);
  }
  return ts;
}

DiscreteSampler::DiscreteSampler(const NoiseSchedule& schedule, SamplerConfig config)
    : schedule_(schedule), config_(std::move(config)) {
  DUALIGN_CHECK(config_.kind == "ddim" || config_.kind == "ddpm", "sampler.kind: expected ddim | ddpm, got '{}'",
                config_.kind);
  timesteps_ = inference_timesteps(schedule_.num_train_timesteps(), config_.num_inference_steps,
                                   config_.timestep_spacing, config_.steps_offset);
}

int64_t DiscreteSampler::prev_timestep(size_t i) const {
  if (config_.kind == "ddim")  // diffusers' DDIM: t - n_train // n_steps
    return timesteps_[i] - schedule_.num_train_timesteps() / config_.num_inference_steps;
  return i + 1 < timesteps_.size() ? timesteps_[i + 1] : -1;  // DDPM: the next listed timestep
}

bool DiscreteSampler::step_needs_noise(size_t i) const {
  if (config_.kind == "ddpm") return timesteps_[i] > 0;
  return config_.eta > 0;
}

// The arithmetic mirrors diffusers' DDIMScheduler.step / DDPMScheduler.step on float32 0-d tensors (coefficients in
// float, the same operations in the same order), so that a guided trajectory matches the pipeline to rounding.
at::Tensor DiscreteSampler::step(size_t i, const at::Tensor& x_t, const at::Tensor& model_out,
                                 const at::Tensor& eps_correction, const at::Tensor& noise) const {
  const int64_t t = timesteps_[i], prev = prev_timestep(i);
  const float a_t = schedule_.alpha_bar_f32(t);
  float a_prev;
  if (prev >= 0) {
    a_prev = schedule_.alpha_bar_f32(prev);
  } else {
    a_prev = (config_.kind == "ddim" && !config_.set_alpha_to_one) ? schedule_.alpha_bar_f32(0) : 1.0f;
  }
  const float b_t = 1 - a_t;
  const float sa = std::sqrt(a_t), sb = std::sqrt(b_t);

  // x0 and ε from the raw output (ε or v), then apply the guidance correction in ε space.
  at::Tensor x0, eps;
  if (schedule_.predicts_v()) {
    x0 = x_t * sa - model_out * sb;
    eps = model_out * sa + x_t * sb;
  } else {
    x0 = (x_t - model_out * sb) / sa;
    eps = model_out;
  }
  if (eps_correction.defined()) {
    eps = eps + eps_correction;
    x0 = x0 - (double(sb) / double(sa)) * eps_correction;
  }
  if (config_.clip_sample) x0 = x0.clamp(-config_.clip_sample_range, config_.clip_sample_range);

  const bool noisy = step_needs_noise(i);
  DUALIGN_CHECK(!noisy || noise.defined(), "sampler step {} (t={}) is stochastic but no noise was given", i, t);
  const float b_prev = 1 - a_prev;
  if (config_.kind == "ddim") {
    const float variance = (b_prev / b_t) * (1 - a_t / a_prev);
    const float std_t = float(config_.eta) * std::sqrt(variance);
    const float direction = std::sqrt(std::max(1 - a_prev - std_t * std_t, 0.0f));
    auto out = x0 * std::sqrt(a_prev) + eps * direction;
    return noisy ? out + noise * std_t : out;
  }
  // DDPM posterior mean and "fixed_small" variance (diffusers' default variance_type).
  const float alpha_t = a_t / a_prev, beta_t = 1 - alpha_t;
  const float c_x0 = (std::sqrt(a_prev) * beta_t) / b_t;
  const float c_xt = std::sqrt(alpha_t) * b_prev / b_t;
  auto mean = x0 * c_x0 + x_t * c_xt;
  if (!noisy) return mean;
  const float variance = std::max(b_prev / b_t * beta_t, 1e-20f);
  return mean + noise * std::sqrt(variance);
}

at::Tensor DiscreteSampler::sample(const ScoreFn& model, at::Tensor x, const SampleOptions& options) const {
  torch::NoGradGuard no_grad;
  auto t_opts = torch::TensorOptions().dtype(torch::kInt64).device(x.device());
  for (size_t i = 0; i < timesteps_.size(); ++i) {
    auto t = torch::full({x.size(0)}, timesteps_[i], t_opts);
    auto out = model(x, t);
    at::Tensor correction;
    if (options.guidance) correction = options.guidance(x, t, schedule_.predict_eps(x, out, t));
    at::Tensor noise;
    if (step_needs_noise(i)) {
      noise = options.generator ? torch::randn(x.sizes(), *options.generator, x.options())
                                : torch::randn(x.sizes(), x.options());
    }
    x = step(i, x, out, correction, noise);
    if (options.trajectory) options.trajectory->push_back(x);
  }
  return x;
}

}  // namespace dualign::diffusion
