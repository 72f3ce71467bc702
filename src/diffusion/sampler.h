// Discrete-time samplers that reproduce diffusers' DDPMScheduler and DDIMScheduler step for step
// (timestep spacing, variance, final alpha, optional x0 clipping), plus a guidance hook in ε space.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "diffusion/schedule.h"

namespace dualign::diffusion {

// The denoiser: raw model output (ε or v, per the schedule's prediction type) at x_t and timesteps t [B].
// t is int64 for the discrete samplers and float (continuous timestep units) for the SDE/ODE samplers.
using ScoreFn = std::function<at::Tensor(const at::Tensor& x_t, const at::Tensor& t)>;
// Guidance: an additive correction to the predicted ε (CFG-style steering, Doob's h-transform, composition).
// Receives x_t, t and the model's ε prediction; returns Δε with the shape of x_t.
using GuidanceFn = std::function<at::Tensor(const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& eps)>;

// One struct for every inference scheduler (diffusers' scheduler_config.json keys, see scheduler_json.h).
// DiscreteSampler runs ddim | ddpm; diffusion/scheduler.h runs all kinds. Fields a kind does not use are ignored.
struct SamplerConfig {
  std::string kind = "ddim";               // ddim | ddpm | pndm | euler | euler_ancestral | dpmsolver++
  int64_t num_inference_steps = 50;
  std::string timestep_spacing = "leading";  // leading | trailing | linspace (diffusers' default: leading)
  int64_t steps_offset = 0;
  double eta = 0.0;                         // DDIM only: 0 = deterministic, 1 = DDPM-like variance
  bool clip_sample = false;                 // clamp predicted x0 to ±clip_sample_range (diffusers default: true)
  double clip_sample_range = 1.0;
  bool set_alpha_to_one = true;             // DDIM, PNDM: ᾱ_prev at the last step is 1 (else ᾱ_0)
  bool skip_prk_steps = true;               // PNDM: PLMS only (as Stable Diffusion ships), else 3 Runge-Kutta steps first
  bool use_karras_sigmas = false;           // euler, dpmsolver++: Karras et al. (2022) ρ = 7 noise levels
  std::optional<double> sigma_min, sigma_max;  // Karras range (default: the schedule's own)
  std::string final_sigmas_type = "zero";   // euler, dpmsolver++: last σ is 0 or σ(t=0) ("sigma_min")
  int64_t solver_order = 2;                 // dpmsolver++: 1, 2 (2M) or 3 (3M)
  std::string solver_type = "midpoint";     // dpmsolver++ second-order update: midpoint | heun
  bool lower_order_final = true;            // dpmsolver++: lower orders for the last steps when < 15 steps
  bool euler_at_final = false;              // dpmsolver++: first-order last step
};

struct SampleOptions {
  GuidanceFn guidance;                        // optional
  std::optional<at::Generator> generator;     // noise for stochastic steps (ddpm, ddim with eta > 0)
  std::vector<at::Tensor>* trajectory = nullptr;  // if set, receives x after every step
};

// diffusers' set_timesteps: descending timesteps for the given spacing.
std::vector<int64_t> inference_timesteps(int64_t num_train_timesteps, int64_t num_inference_steps,
                                         const std::string& spacing, int64_t steps_offset = 0);

// Holds a reference to `schedule`: it must outlive the sampler.
class DiscreteSampler {
 public:
  DiscreteSampler(const NoiseSchedule& schedule, SamplerConfig config);

  const std::vector<int64_t>& timesteps() const { return timesteps_; }
  int64_t prev_timestep(size_t i) const;  // -1 means "the clean end"
  const SamplerConfig& config() const { return config_; }

  // One reverse step from timesteps()[i]. `eps_correction` (may be undefined) is added to the model's ε;
  // `noise` (may be undefined when the step is deterministic) is the standard normal draw for the step.
  at::Tensor step(size_t i, const at::Tensor& x_t, const at::Tensor& model_out, const at::Tensor& eps_correction,
                  const at::Tensor& noise) const;
  bool step_needs_noise(size_t i) const;

  // Full loop from x_T (typically standard normal) to x_0.
  at::Tensor sample(const ScoreFn& model, at::Tensor x_T, const SampleOptions& options = {}) const;

 private:
  const NoiseSchedule& schedule_;
  SamplerConfig config_;
  std::vector<int64_t> timesteps_;
};

}  // namespace dualign::diffusion
