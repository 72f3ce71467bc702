// Per-step terms of the path KL between a policy and a frozen reference that run the same discrete sampler.
//
// The sampler (DDPM, or DDIM with η > 0) is a Markov chain x_{t_N} → … → x_{t_1} → x_0 whose step i is Gaussian,
// N(μ_i(x, out), σ_i² I), with the same σ_i for both models. By the chain rule of KL, along the policy's own
// trajectories,
//     KL(path_θ ‖ path_ref) = E_θ Σ_i c_i(x_{t_i}),
// and the weightings below give c_i:
//   lemma1   c_i = ‖μ_i(x, out_θ) − μ_i(x, out_ref)‖² / (2σ_i²), summed over elements: the exact KL of one step
//            (Khalafi et al., Lemma 1). For ε-prediction μ_θ − μ_ref = d_i (ε_θ − ε_ref) with the DDIM coefficient
//            d_i = √(1 − ᾱ_prev − σ_i²) − √ᾱ_prev √(1 − ᾱ_t)/√ᾱ_t, so c_i = d_i²/(2σ_i²) ‖ε_θ − ε_ref‖². μ and σ are
//            read from DiscreteSampler::step itself, so this holds for any sampler config and equals what
//            `dualign eval --kl path` measures (eval/kl.h). Deterministic steps (σ_i = 0: DDIM's last step to
//            ᾱ = 1, DDPM's t = 0) have no density and contribute 0. Caveat (measured): that last step is then free,
//            x_0 moves by √(1−ᾱ_t)/√ᾱ_t · Δε at no KL cost, and a policy pushed hard enough uses it: with fixed
//            λ = (2, 2) on the 2-D task the path KL read 1.55 nats where the exact tilt needs 4.4 for the same rewards.
//            At the λ ≈ 0.2 of the constrained runs the estimate matches the exact optimum (0.54 vs 0.541).
//   uniform  c_i = mean over elements of (ε_θ − ε_ref)²: what the reference code (constrained_comp_align,
//            AlignProp-style) sums over steps. It differs from lemma1 by step-dependent constants and an overall
//            scale (1/D), so its KL coefficient is not in nats.
#pragma once
#include <torch/torch.h>

#include <string>

#include "diffusion/sampler.h"
#include "diffusion/schedule.h"

namespace dualign::methods {

enum class KlWeighting { lemma1, uniform };

// "lemma1" | "uniform"; anything else is an error naming `key`.
KlWeighting parse_kl_weighting(const std::string& name, const std::string& key);

// σ_i of sampler step i (0 for a deterministic step), read from the sampler: step(x = 0, out = 0, noise = 1).
double step_sigma(const diffusion::DiscreteSampler& sampler, size_t i);

// c_i per sample [B] (float32) at x_t for the raw model outputs (ε or v) of policy and reference at step i.
// Differentiable in both outputs and in x_t.
torch::Tensor step_kl(const diffusion::DiscreteSampler& sampler, const diffusion::NoiseSchedule& schedule, size_t i,
                      const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& out_policy,
                      const torch::Tensor& out_reference, KlWeighting weighting);

}  // namespace dualign::methods
