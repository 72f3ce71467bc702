// The point-wise KL estimator of Lemma 2 (Khalafi et al. 2025): for two diffusion models with the same noise
// schedule whose scores s_p, s_q are the true scores of their forward processes,
//     KL(p_0 ‖ q_0) = KL(p_T ‖ q_T) + ∫_0^T ω̃(τ) E_{x_τ ∼ p_τ} ‖s_p(x_τ) − s_q(x_τ)‖² dτ.
//
// Weight. For the VP forward SDE dx = −½β x dτ + sqrt(β) dW the KL between the two marginals decays as
// d/dτ KL(p_τ ‖ q_τ) = −½ β(τ) E_{p_τ}‖∇log p_τ − ∇log q_τ‖² (Fokker–Planck; Song et al. 2021, Thm. 1 with
// equality for true scores). With σ_τ = sqrt(1 − ᾱ_τ) (the paper's α_τ), β dτ = −d log ᾱ and s = −ε/σ this is
//     ω̃ dτ ‖Δs‖² = ½ (−d log ᾱ) ‖Δε‖² / σ²,
// the same measure as the paper's ω̃_τ = −α̇_τ/α_τ³ (App. D.2), which is written for the squared difference of
// the x0-predictions (Δx̂0 = −(σ/sqrt(ᾱ)) Δε; the sign is its reversed time). Note ½ d log(σ²/ᾱ) = ½ d(−log SNR):
// the weight is uniform in log-SNR.
//
// Discretisation for our discrete schedule (ᾱ_t, t = 0..T−1): log ᾱ is piecewise constant with steps
// −log α_t = −log(1 − β_t) at each t, so
//     ω_t = −½ log(1 − β_t) / (1 − ᾱ_t)    on ‖ε_p(x_t, t) − ε_q(x_t, t)‖² (summed over dimensions),
//     KL(p_0 ‖ q_0) ≈ Σ_{t=0}^{T−1} ω_t E_{x_t ∼ p_t} ‖Δε_t‖²,
// with an O(1/T) Riemann error and the terminal KL(p_T ‖ q_T) dropped (ᾱ_T ≈ 4e-5 for the linear schedule:
// both marginals are N(0, I) to within that). ω_t ≈ 1/(2t) near t = 0, Σ_t ω_t = ½ log(SNR_0 / SNR_{T−1}) ≈ 9.6.
//
// Monte Carlo (stratified importance sampling): the timesteps are split into K strata of equal weight mass
// W/K (W = Σ ω_t, so equal spans of log-SNR); per sample and stratum one t is drawn ∝ ω_t within the stratum
// and one fresh ε, x_t = sqrt(ᾱ_t) x_0 + σ_t ε (x_0 ∼ p: the sample re-noised by p's own forward process), and
//     KL̂ = Σ_k (W/K) ‖ε_p(x_{t_k}) − ε_q(x_{t_k})‖².
// Unbiased for the discretised sum; the per-sample values give the standard error.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <vector>

#include "compose/components.h"
#include "diffusion/schedule.h"

namespace dualign::compose {

// ω_t for t = 0..T−1 (float64 [T]).
torch::Tensor lemma2_weights(const diffusion::NoiseSchedule& schedule);

// The random draws of one estimate for N samples: timesteps [N, K] int64 and noise [N, K, ...]. Drawn for the
// whole (global) sample set from one seed, so a rank's rows [start, start + len) are the same for any world size.
struct KlDraws {
  torch::Tensor t;      // [N, K] int64
  torch::Tensor noise;  // [N, K, sample_shape...] float32
  double stratum_mass = 0;  // W / K
  KlDraws rows(int64_t start, int64_t length) const;
};
KlDraws draw_kl(const diffusion::NoiseSchedule& schedule, int64_t n, int64_t strata,
                const std::vector<int64_t>& sample_shape, uint64_t seed);

// Per-sample estimates [n, m] (float64) of KL(p ‖ q_i) for every component i, from samples x0 [n, ...] of p.
// p's ε is `p_eps` when given (a distilled model), else the composition Σ λ_i ε_i of the same forward passes
// (Algorithm 3's surrogate). Rows are processed `batch` at a time. No gradients.
torch::Tensor pointwise_kl(const std::vector<Component>& components, const std::vector<double>& lambda,
                           const std::optional<EpsFn>& p_eps, const diffusion::NoiseSchedule& schedule,
                           const torch::Tensor& x0, const KlDraws& draws, int64_t batch = 512);

}  // namespace dualign::compose
