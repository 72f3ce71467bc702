// A sampler rollout of the policy that reward gradients can flow back through (AlignProp-style truncated
// back-propagation), accumulating the path KL to a frozen reference on the way.
//
// Gradient paths, for the N steps of the sampler and `grad_steps` = K:
//   - The last K steps form the window: x_t is not detached there, so ∂r(x_0)/∂θ and ∂KL/∂θ flow through the
//     chain of those K steps (the reparameterisation gradient, truncated to the window). The reference is
//     evaluated with autograd on in the window too (its weights are frozen; gradients reach only x_t).
//   - Before the window x_t is detached. With `kl_all_steps` the per-step KL there still differentiates in the
//     policy's output at the fixed x_t (∇_θ c_i(x_t), the DPOK-style gradient that drops the term through the
//     sampling law); without it those steps run under no-grad (the reference code's behaviour, where every UNet
//     output before the window is detached).
#pragma once
#include <torch/torch.h>

#include <functional>

#include "diffusion/sampler.h"
#include "methods/path_kl.h"

namespace dualign::methods {

struct RolloutOptions {
  int64_t grad_steps = 1;     // K ∈ [1, N]: steps at the end of the chain that carry gradients through x_t
  bool kl_all_steps = true;   // per-step KL gradients at steps before the window too (at detached x_t)
  bool with_kl = true;        // accumulate the path KL (false: the reference is never called)
  KlWeighting weighting = KlWeighting::lemma1;
};

struct Rollout {
  torch::Tensor x0;  // [B, ...] the sampler's output, differentiable through the window
  torch::Tensor kl;  // [B] float32 Σ_i c_i along the trajectory (zeros when !with_kl)
};

// `policy` and `reference` map (x_t, t [B] int64) to raw model outputs. `noise(i)` returns the standard normal
// draw of stochastic step i (shaped like x_T).
Rollout rollout(const diffusion::DiscreteSampler& sampler, const diffusion::NoiseSchedule& schedule,
                const diffusion::ScoreFn& policy, const diffusion::ScoreFn& reference, const torch::Tensor& x_T,
                const std::function<torch::Tensor(size_t)>& noise, const RolloutOptions& options);

}  // namespace dualign::methods
