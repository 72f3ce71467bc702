// Sampling the tilt q ∝ p_ref · exp(−f) with Doob's h-transform through the sampler's guidance hook.
//   h_t(x) = E_ref[exp(−f(X_0)) | X_t = x],   score_q = score_ref + ∇ log h_t,
// and since ε = −sqrt(1−ᾱ_t) · score, the ε correction is Δε = −sqrt(1−ᾱ_t) · ∇ log h_t(x_t).
// The sampler starts from N(0, I), not from the tilted prior ∝ h_T p_T: with ᾱ_T ≈ 0, h_T is nearly constant.
//
// Two estimators of ∇ log h_t:
//  (a) one-step Tweedie: h_t(x) ≈ exp(−f(x̂_0(x))), x̂_0 from the reference's ε prediction; ∇ by autograd
//      through f and the reference network. One extra forward + backward per step; biased (Jensen) at high
//      noise, exact when f is linear and p_ref Gaussian (X_0 | X_t is then Gaussian with a covariance that does
//      not depend on x).
//  (b) nested Monte Carlo: from x_t run M stochastic reference DDIM chains (η = 1 by default, S steps) to
//      x_0^(m); h_t ≈ (1/M) Σ_m exp(−f(x_0^(m))). The gradient is PATHWISE: the chain's noise is fixed, so
//      x_0^(m) is a differentiable function of x_t and
//        ∇ log ĥ = Σ_m softmax_m(−f(x_0^(m))) · ∇_x(−f(x_0^(m)))       (self-normalised, autograd through the chain).
//      We chose this over the score-function identity ∇h = E[e^{−f(X_0)} ∇_x log p(X_{t'} | X_t = x)], whose
//      variance grows as the first transition's variance shrinks. Consistent as M → ∞; biased for finite M
//      (log of a mean). Cost: M · S reference forwards + backwards per outer step.
#pragma once
#include <torch/torch.h>

#include <functional>

#include "diffusion/sampler.h"
#include "diffusion/schedule.h"

namespace dualign::ddo {

// f as a differentiable function [B, D] → [B].
using PotentialFn = std::function<torch::Tensor(const torch::Tensor& x)>;

// The GuidanceFns hold references to `schedule`: it must outlive them. `reference` is the raw model output.
diffusion::GuidanceFn tweedie_guidance(diffusion::ScoreFn reference, const diffusion::NoiseSchedule& schedule,
                                       PotentialFn f);

struct NestedOptions {
  int64_t chains = 8;  // M
  int64_t steps = 8;   // S: inner steps from t down to the clean end
  double eta = 1.0;    // inner DDIM η (> 0: chains from the same x_t must differ)
  uint64_t seed = 0;
};
diffusion::GuidanceFn nested_guidance(diffusion::ScoreFn reference, const diffusion::NoiseSchedule& schedule,
                                      PotentialFn f, const NestedOptions& options);

// Sampling-importance-resampling: n rows of `pool` [P, D] drawn with replacement with probabilities ∝ exp(−f)
// (f [P] = f(pool)). The exact tilted law of the pool's law as P → ∞.
torch::Tensor sir_resample(const torch::Tensor& pool, const torch::Tensor& f, int64_t n, uint64_t seed);

}  // namespace dualign::ddo
