// Constrained reward alignment (Khalafi, Ding, Hounie, Ribeiro 2025, arXiv 2508.19104), `method.name: constrained`.
//
// Problem:      min_θ KL(path_θ ‖ path_ref)   s.t.   E_θ[r̃_i(x_0)] ≥ b_i,   i = 1..m
// Lagrangian:   L(θ, λ) = kl.weight · KL + Σ_i λ_i (b_i − E_θ r̃_i),   λ ≥ 0
// Solution:     p* ∝ p_ref · exp(λ*ᵀ r̃ / kl.weight) for the x_0 marginal; λ* maximises the concave dual
//               D(λ) = −log Z(λ) + λᵀb (kl.weight = 1), so the learned λ can be checked against it.
//
// Primal (per micro-batch, the policy samples itself; use `data.kind: none`):
//   x_T ~ N(0, I) drawn for the global micro-batch from the batch seed (same draws for any number of ranks), the
//   policy's sampler (method.sampler: DDIM with η, or DDPM) runs to x_0 with step noise from the same seed;
//   reward gradients back-propagate through the last K sampler steps only (reward_backprop.h), K = grad_steps,
//   or with grad_steps_std > 0 a randomised K ~ round(N(grad_steps, grad_steps_std²)) redrawn until 1 ≤ K ≤ N
//   per micro-batch (the reference code draws k ~ N(0.8 N, 5²) and detaches the steps before k, i.e. K = N − k).
//   The path KL to the frozen reference is Σ_i c_i along the same trajectory (path_kl.h: `lemma1` = exact per-step
//   KL ‖μ_θ − μ_ref‖²/(2σ_i²) in nats, needs a stochastic sampler; `uniform` = the reference code's unweighted
//   Σ_i mean (ε_θ − ε_ref)²). loss = kl.weight · mean KL + Σ_i λ_i · mean(b_i − r̃_i) (λ fixed within the step).
// Dual (every rank, identical): the samples of b_i − r̃_i (≤ 0 form: positive = violated) go into dual::DualAscent
//   (method.dual: projection nonneg, lr, warm-up, slack EMA, every N steps); it all-reduces the window and does
//   λ ← [λ + η (b − r̂)]_+. λ, the EMA and the normalisation statistics are checkpointed (state()).
//   The equal-weight baseline is the same method with fixed λ: `method.dual.lr: 0` (λ stays at dual.init).
// Normalisation (per constraint, `normalize: none | mean | mean_std`): r̃ = (r − m)/s with m, s the mean and
//   standard deviation of r on `normalization.samples` reference samples drawn once at start (same sampler;
//   sums all-reduced over ranks), as the reference code z-scores each reward with pretrained-model statistics;
//   or `reference_mean` / `reference_std` given under the constraint (required for conditional models, whose
//   unconditional draws would not be the training distribution: the reference code's SD-1.5 table).
//   The threshold b_i is in r̃ units; dual/<name>/threshold_raw logs it in the reward's own units.
// Guidance (`guidance: {scale, rescale}`, scale > 1): every rollout step of the policy and of the reference is
//   classifier-free guided on [∅; c] in one call, ∅ = the batch's unconditional branch (Batch::uncond: the shards'
//   empty-prompt embedding) or the model's null class; the rewards see the guided samples.
// Logged per step (train/…, averaged over ranks): kl (the path-KL estimate on the training trajectories),
//   <name>_reward (raw r_i), <name>_slack (b_i − r̃_i), grad_steps (mean K); and dual/<name>/lambda, dual/<name>/value.
// Rewards must be differentiable in x (gmm_target; classifier rewards pass gradients when x requires them).
// Config keys and defaults: configs/method/constrained.yaml.
#pragma once
#include <memory>

#include "methods/method.h"

namespace dualign::methods {

std::unique_ptr<Method> make_constrained(const config::Section& cfg, const MethodContext& ctx);

}  // namespace dualign::methods
