// Mixture composition (OR) / "constrained diffusion models via dual training" (Khalafi, Ding, Ribeiro,
// NeurIPS 2024; docs/methods.md#composition): one model p_θ for m groups of data q_1..q_m (datasets, or the
// classes of one labelled dataset; data::Batch::group holds each row's group id), trained on
//
//   min_θ max_λ  L(θ, λ) = Σ_i λ_i (ℓ_i(θ) − b_i),   λ ∈ simplex (or the notebook's sum-zero + clip rule)
//
// i.e. the epigraph form of min_p max_i D_i(p) with the variable u eliminated by the projection: only the
// differences between the constraint values matter, and at the saddle point they are equal for every group
// with λ_i > 0. The minimiser in θ for fixed λ is the mixture q^λ = Σ λ_i q_i.
//
// Primal (per micro-batch, one backward): the λ-weighted denoising loss Σ_j w_j ‖target − model(x_t, t)‖²
// over the rows j of the global micro-batch (B rows), with t uniform as in SFT — any positive time weighting
// has the same minimiser q^λ, so the primal keeps the well-conditioned SFT weighting. Per-sample weights,
// so that the gradient is an unbiased estimate of ∇ Σ_i λ_i ℓ_i although groups have different frequencies
// (`weighting`):
//   frequency  w_j = λ_g / (B p_g), p_g the known share of group g in the data (`group_frequency`):
//              E[Σ_j w_j ℓ_j] = Σ_g B p_g · λ_g/(B p_g) · ℓ_g = Σ_g λ_g ℓ_g exactly, whatever the batch holds.
//              With λ = p this is plain SFT (w_j = 1/B).
//   batch      w_j = λ_g / n_g, n_g the count of group g in the global micro-batch (all-reduced): the exact
//              Σ_g λ_g · mean_g ℓ on every batch, but a group absent from the batch loses its term, so the
//              estimate is biased by P(n_g = 0) for rare groups. Needs no frequencies.
//
// Dual: the per-group sums and counts of a per-sample constraint value are fed to dual::DualAscent, which
// all-reduces them every `dual.every` steps and takes one projected step identically on all ranks (lr,
// warm-up, EMA of the values: `dual.*`). The values:
//   estimate: elbo (default)  the per-sample negative ELBO (DDPM variational bound, nats, up to a constant
//             common to all groups): T·c_t·‖ε − ε̂_θ(x_t, t)‖² with c_0 = 1/(2α_0), c_t = β_t/(2α_t(1−ᾱ_{t−1})),
//             from the same forward as the primal. Its group mean estimates −E_{q_i} log p_θ = KL(q_i‖p) + H(q_i).
//   estimate: mse             the plain ε-MSE (low variance, but equal ε-MSEs have no closed-form meaning).
//   constraint: cross_entropy   g_i = ℓ_i − b_i: the paper's ELBO relaxation. Equal cross-entropies do NOT
//             mean equal KLs when the groups have different entropies: for disjoint supports
//             −E_{q_i} log q^w = H(q_i) − log w_i, so the saddle point is w_i ∝ exp H(q_i), the maximum-entropy
//             mixture (the paper's Theorem 5) — a group with two modes gets twice the mass of one with one.
//   constraint: kl            g_i = ℓ_i(θ) − ℓ_i(ref) − log p_i − b_i ≈ KL(q_i‖p_θ), for fine-tuning from a
//             reference trained on the data with group shares p (e.g. plain SFT on imbalanced data,
//             `model.init_from`): with disjoint supports ℓ_i(ref) = H(q_i) − log p_i, so the entropy cancels.
//             Balancing KLs gives KL(q_i‖Σ w q) = −log w_i equal for all i: UNIFORM weights (fairness).
//             The ELBO difference is taken on the same (x_0, t, ε) for policy and frozen reference, so the
//             large irreducible part of the per-sample ELBO cancels (a control variate).
//   constraint: class_frequency   g_i = target_i − f_i, f_i the share of the policy's own samples that an image
//             classifier labels i (class_frequency.h: a short DDIM chain at the last step of every dual window,
//             counts all-reduced): the fairness constraint f_i ≥ target_i stated on the samples themselves. For the
//             mixture family f_i = λ_i when the model fits every group, and on the simplex the constraints hold
//             only at f = target, so the ascent is the integral controller that finds the λ whose model has those
//             shares when fit and capacity make them differ from λ. Needs no reference and no loss estimate; the
//             per-sample values and the baseline below are not used.
//   b_i: `thresholds` (default 0; a common b cancels under the simplex / sum-zero projection).
// Variance: the per-sample ELBO spreads over two orders of magnitude in t (std ≈ 80 nats for a 2-D Gaussian).
// Two exact control variates bring it down (to ≈ 20 nats there): ‖ε‖² is replaced by its mean D, and a
// per-timestep baseline b(t), shared by all groups (EMA over dual windows, `baseline_decay`), is subtracted —
// it shifts every group mean by the same E_t b(t), which the projection ignores. Logged dual values are
// therefore relative (up to a constant common to all groups).
// In high dimension that is not enough: the ELBO weight T·c_t is ~500 at t = 0 but ~10 at t = 100 (linear
// schedule, T = 1000), and the small-t terms only measure how well the within-group detail is fit. With
// `elbo_t_min` = t_0 the terms t < t_0 are dropped: the value is then the ELBO of the data noised to level t_0,
// i.e. the KL / cross-entropy between the t_0-noised laws (the chain rule of the path KL). As long as the groups
// stay separated at that noise level, KL(q_{i,t_0} ‖ Σ w q_{t_0}) = −log w_i still, so the saddle points above
// are unchanged, at a small fraction of the variance (Fashion-MNIST 14×14 uses t_0 = 100: σ ≈ 0.33 per pixel).
//
// The dual step needs every group in every window of `dual.every` steps; with known frequencies the method
// fails early when B·every·min p_g < 10 samples are expected. λ, the values' EMA, the update count and the
// baseline are checkpointed (state()); the samples of a partly filled window are not, so a resume is exact when
// train.checkpoint_every is a multiple of dual.every (otherwise the first update after it uses fewer samples).
//
// Limits (measured, launch/experiments/fairness_fmnist.sh): the "uniform weights" reading of equal KLs needs groups that are
// apart at the noise level elbo_t_min. Fashion-MNIST's tops (pullover, coat, shirt) overlap: with those as the
// minorities the dual lowers λ of pullover and coat (the model already covers them through the other tops), which
// is the KL-minimax answer but not uniform classifier frequencies. With distinct minorities (trouser, sandal, bag)
// a second bias shows: constraint kl takes ℓ_i(ref) + log p_i as the entropy H(q_i), i.e. assumes the reference
// fits every group's shape; but the reference under-fits exactly the rare groups, so when fine-tuning improves
// their within-group fit their estimated KL falls below the truth (measured: −5 nats relative, more than the
// log 7.3 ≈ 2 nats a change of mass to 1/10 can explain) and the dual lowers their λ to 0 after an initial rise.
// A reference fitted well to every group (or held-out estimates of ℓ_i) is what this form needs; moving elbo_t_min
// to 300 (where within-class detail is gone) keeps the rare classes' λ up but balances the overlapping classes'
// noised laws, not their shares (measured: TV 0.238 → 0.132, not halved). constraint: class_frequency measures the
// shares directly and is what launch/experiments/fairness_fmnist.sh uses (measured there: TV 0.237 → 0.069, the KL form 0.213).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "dual/dual_ascent.h"
#include "methods/class_frequency.h"
#include "methods/method.h"

namespace dualign::methods {

struct MixtureSettings {
  int64_t groups = 0;
  std::vector<std::string> names;        // dual variable names (logged as dual/<name>/lambda)
  std::vector<double> frequency;         // p_g, normalised; empty when not configured
  std::string weighting = "frequency";   // frequency | batch
  std::string constraint = "cross_entropy";  // cross_entropy | kl | class_frequency
  std::string estimate = "elbo";         // elbo | mse
  std::vector<double> thresholds;        // b_g
  std::string reference_dtype = "float32";
  double baseline_decay = 0.9;           // EMA of the per-timestep baseline; 0 = none
  int64_t elbo_t_min = 0;                // ELBO terms t < elbo_t_min are left out (see above)
  dual::DualSettings dual;
  ClassFrequencySettings class_frequency;  // constraint: class_frequency only

  // Reads `method` (the keys above plus the `dual` section); errors name the key.
  static MixtureSettings read(const config::Section& method);
};

// Per-sample weights w_j [n] (float32, on the device of `group`) for rows with group ids `group` [n] (each in
// [0, m)) so that Σ_j w_j ℓ_j over the GLOBAL micro-batch estimates Σ_g λ_g ℓ_g (see above). `lambda` is float64
// [m]; `global_counts` (float64 [m], n_g over the global micro-batch) is used by "batch", `frequency` and
// `global_size` by "frequency". Computed on the device: no host sync.
torch::Tensor mixture_weights(const torch::Tensor& lambda, const torch::Tensor& group, const std::string& weighting,
                              const std::vector<double>& frequency, const torch::Tensor& global_counts,
                              int64_t global_size);

// T·c_t for every timestep t (float64 [T]): the per-sample negative-ELBO weight of ‖ε − ε̂‖² (summed over
// elements) when t is drawn uniformly.
torch::Tensor elbo_weights(const diffusion::NoiseSchedule& schedule);

std::unique_ptr<Method> make_mixture(const config::Section& cfg, const MethodContext& ctx);

}  // namespace dualign::methods
