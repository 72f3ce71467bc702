// Continuous-time view of a discrete schedule (VP-SDE): reverse-SDE (Euler–Maruyama) and probability-flow ODE
// samplers, and the PF-ODE log-likelihood with exact divergence (low dimension) or Hutchinson's estimator.
// Time s runs over [0, T-1] in timestep units (see NoiseSchedule::alpha_bar_continuous); the model receives a
// float tensor of s values. Forward SDE: dx = -½β(s) x ds + sqrt(β(s)) dW; score = -ε / sqrt(1-ᾱ(s)).
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <functional>
#include <optional>
#include <string>

#include "diffusion/sampler.h"
#include "diffusion/schedule.h"

namespace dualign::diffusion {

struct ContinuousConfig {
  int64_t num_steps = 500;
  double s_max = -1;   // start of sampling / end of likelihood integration; < 0 → T-1
  double s_min = 0;    // clean end
};

// ε at continuous time s (converts v-predictions with the continuous ᾱ(s)) plus the guidance correction.
at::Tensor continuous_eps(const NoiseSchedule& schedule, const ScoreFn& model, const GuidanceFn& guidance,
                          const at::Tensor& x, double s);

at::Tensor reverse_sde_sample(const NoiseSchedule& schedule, const ScoreFn& model, at::Tensor x_T,
                              const ContinuousConfig& config = {}, const SampleOptions& options = {});
// PF-ODE with Heun's method (2nd order): deterministic.
at::Tensor pf_ode_sample(const NoiseSchedule& schedule, const ScoreFn& model, at::Tensor x_T,
                         const ContinuousConfig& config = {}, const SampleOptions& options = {});

struct LikelihoodConfig {
  ContinuousConfig time;                   // num_steps RK4 steps from s_min to s_max
  // Step boundaries s_i = s_min + (s_max − s_min)·(i/N)^time_power: 1 is uniform; > 1 concentrates steps at the
  // clean end, where ε/σ(s) changes fastest (images need it: σ(0) ≈ 0.01).
  double time_power = 1;
  std::string divergence = "exact";        // exact (D backward passes) | hutchinson
  int64_t hutchinson_probes = 1;           // Rademacher probes per evaluation (fixed along the path)
  std::optional<at::Generator> generator;  // for the probes
  // log density of the terminal distribution at s_max; default standard normal
  std::function<at::Tensor(const at::Tensor& x_T)> prior_log_prob;
  GuidanceFn guidance;
};

// log p(x) [B] in nats of the model's PF-ODE density at s_min, for x [B, ...]. The model must be
// differentiable with respect to x (autograd is used for the divergence).
at::Tensor pf_ode_log_likelihood(const NoiseSchedule& schedule, const ScoreFn& model, const at::Tensor& x,
                                 const LikelihoodConfig& config = {});

}  // namespace dualign::diffusion
