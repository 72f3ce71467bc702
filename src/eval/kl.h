// KL divergence of a policy diffusion model to its reference, estimated from the policy's own samples.
//
// PF-ODE KL (low-dimensional data). Both models define densities through their probability-flow ODEs; with
// x_i ~ p_θ (drawn by integrating the policy's PF-ODE from x_T ~ N(0, I)),
//     KL(p_θ ‖ p_ref) ≈ (1/n) Σ_i [log p_θ(x_i) − log p_ref(x_i)],
// with both log-likelihoods from diffusion::pf_ode_log_likelihood (exact divergence, RK4). Cost: per sample
// 4·steps·(1 + D) network evaluations per model, so this is for D ≲ 10.
//
// Path KL (images, latents). The policy's stochastic discrete sampler (DDPM, or DDIM with eta > 0) is a
// Markov chain x_{t_K} → … → x_{t_1} → x_0 with Gaussian steps N(μ_θ(x_t, t), σ_t² I); the reference run with
// the same sampler has N(μ_ref(x_t, t), σ_t² I) with the same σ_t. By the chain rule of KL, along trajectories
// drawn from the policy,
//     KL(path_θ ‖ path_ref) = E_θ Σ_{steps k with σ_k > 0} ‖μ_θ(x_{t_k}) − μ_ref(x_{t_k})‖² / (2 σ_k²),
// an upper bound on KL between the two models' sampler outputs at the last stochastic step (data processing).
// μ and σ are the sampler's own (DiscreteSampler::step with zero noise / unit noise), so the estimate holds for
// whatever sampler config is given (kind, steps, eta, spacing). Deterministic steps (DDPM's final t = 0, DDIM's
// final step to ᾱ = 1, any eta = 0 step) have no density and are left out; a deterministic sampler is an error.
// Depends on the number of steps (more steps → more, smaller terms): compare runs at the same sampler config.
#pragma once
#include <torch/torch.h>

#include "diffusion/continuous.h"
#include "diffusion/sampler.h"
#include "diffusion/schedule.h"
#include "eval/denoiser.h"
#include "eval/metrics.h"

namespace dualign::eval {

struct KlEstimate {
  MeanSe kl;                  // mean ± se over samples of the per-sample estimate
  torch::Tensor per_sample;   // [n] float64
  torch::Tensor samples;      // [n, ...] the policy samples the estimate used (float32, CPU)
};

struct PfOdeKlOptions {
  int64_t steps = 200;      // RK4 steps of the likelihood ODE and Heun steps of the sampling ODE
  int64_t batch_size = 256;
};
// x_T [n, ...] standard normal; `cond` has n rows or is empty. Each model is integrated with its own schedule.
KlEstimate pfode_kl(const Denoiser& policy, const diffusion::NoiseSchedule& policy_schedule, const Denoiser& reference,
                    const diffusion::NoiseSchedule& reference_schedule, const torch::Tensor& x_T,
                    const data::Condition& cond = {}, const PfOdeKlOptions& options = {});

// The same KL estimate on given samples (assumed drawn from the policy): log p_θ(x) − log p_ref(x) per sample.
torch::Tensor pfode_log_ratio(const Denoiser& policy, const diffusion::NoiseSchedule& policy_schedule,
                              const Denoiser& reference, const diffusion::NoiseSchedule& reference_schedule,
                              const torch::Tensor& x, const data::Condition& cond = {},
                              const PfOdeKlOptions& options = {});

// Path KL along the policy's stochastic sampler trajectories from x_T [n, ...]; `gen` draws the step noise.
// Both models share `schedule` (the caller checks that their checkpoints agree).
KlEstimate path_kl(const Denoiser& policy, const Denoiser& reference, const diffusion::NoiseSchedule& schedule,
                   const diffusion::SamplerConfig& sampler, const torch::Tensor& x_T, at::Generator gen,
                   const data::Condition& cond = {}, int64_t batch_size = 256);

}  // namespace dualign::eval
