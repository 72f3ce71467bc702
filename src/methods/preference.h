// What the preference methods (Diffusion-DPO, DMPO, Diffusion-KTO) share: the frozen reference and the
// per-image ε-MSE terms of policy and reference at a noise level drawn for the global batch.
//
// Implicit log-ratio of one image (Diffusion-DPO's per-timestep surrogate of log p_θ(x)/p_ref(x)):
//   ρ = −β · (m_θ − m_ref),   m = mean over elements of ‖target(x0, ε, t) − model(x_t, t, c)‖²
// β absorbs the paper's T·ω(λ_t) and the 1/D of the mean. Conventions, per pair (w ≻ l):
//   dualign / diffusers train_diffusion_dpo.py:  loss = −log σ(ρ_w − ρ_l)          (β here = β there)
//   official Diffusion-DPO train.py:           loss = −log σ(−0.5 β_dpo (Δm_θ − Δm_ref))  ⇒ β = β_dpo / 2
// so the published β_dpo = 5000 (SD-1.5 script) is β = 2500 here.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "methods/method.h"

namespace dualign::methods {

// The reference model a preference method holds: built from the policy's starting point, frozen, optionally
// in bf16 (`method.reference_dtype`: float32 | bfloat16) to halve its memory on GPU. For a LoRA policy it is the
// policy's frozen base with the adapters bypassed (no second copy; float32 only).
std::shared_ptr<models::ScoreModel> frozen_reference(const MethodContext& ctx, const std::string& dtype_name,
                                             const std::string& key);

// Per-image MSE terms [B] for winners and losers that share one t and one ε per pair (drawn for the global
// micro-batch, so any world size sees the same draws). The policy runs winner and loser in one forward.
struct PairMse {
  torch::Tensor policy_w, policy_l;  // with gradients
  torch::Tensor ref_w, ref_l;        // detached
};
PairMse pair_mse(models::ScoreModel& policy, models::ScoreModel& reference, const diffusion::NoiseSchedule& schedule,
                 const data::Batch& batch, const torch::Device& device);

// The same for unpaired samples (KTO): an independent t and ε per sample.
struct SampleMse {
  torch::Tensor policy, ref;  // [B]
};
SampleMse sample_mse(models::ScoreModel& policy, models::ScoreModel& reference, const diffusion::NoiseSchedule& schedule,
                     const data::Batch& batch, const torch::Device& device);

// Logging statistics every pair method reports (sums, so the trainer can average them over ranks):
// implicit_acc (ρ_w > ρ_l), reward_margin (ρ_w − ρ_l), model/ref MSE of winners and losers.
void add_pair_stats(LossOutput& out, const PairMse& m, const torch::Tensor& margin);

// The implicit margin ρ_w − ρ_l of each pair, ρ = −β (m_θ − m_ref).
torch::Tensor implicit_margin(const PairMse& m, double beta);

// A pair method whose loss is the mean of `per_pair(margin)` (Diffusion-DPO: softplus(−margin); hinge:
// relu(1 − margin)), with the frozen reference and the pair statistics. Reads `beta` and `reference_dtype`.
using MarginLoss = torch::Tensor (*)(const torch::Tensor& margin);
std::unique_ptr<Method> make_margin_method(std::string name, MarginLoss per_pair, const config::Section& cfg,
                                           const MethodContext& ctx);

}  // namespace dualign::methods
