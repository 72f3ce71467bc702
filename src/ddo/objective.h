// Objectives F(q) of DDO, evaluated for the Gibbs tilt q ∝ p_ref · exp(−f) through a fixed set of N reference
// samples x_i ~ p_ref (drawn once, sharded over ranks: see collective.h). Expectations under q use
// self-normalised weights
//   π_i = exp(−f_i) / Σ_j exp(−f_j),   f_i = f(x_i),
// and the normaliser Z = E_ref[exp(−f)] ≈ (1/N) Σ_j exp(−f_j). The regularised objective is
//   G(q) = F(q) + β · KL(q ‖ p_ref),   KL ≈ Σ_i π_i log(N π_i) = Σ_i π_i (−f_i) − log Z.
// Under MPI every sum over i runs over all ranks' samples: log Z by an all-reduced log-sum-exp (max, then the
// sum of exp(−f − max)), the SNIS sums by one all-reduce, and the DPO partner values by an all-gather of f.
//
// RLHF:  F(q) = −E_q[r].  Linear in q, so the first variation is g = −r (a function of x, free of q).
//
// DPO (Bradley–Terry population loss over reference pairs). Pairs (x, x') ~ p_ref ⊗ p_ref, labelled x ≻ x'
// with the reward's Bradley–Terry probability p(x, x') = σ(r(x) − r(x')). With the log-ratio
// ℓ_q = log(q / p_ref) and Δ_q(x, x') = ℓ_q(x) − ℓ_q(x'):
//   F(q) = E_{x,x'~p_ref} [ −p(x,x') log σ(β_d Δ_q(x,x')) − (1 − p(x,x')) log σ(−β_d Δ_q(x,x')) ].
// For q = p_ref e^{−f} / Z, ℓ_q = −f − log Z and Z cancels: Δ_q(x, x') = f(x') − f(x). So F(q_k) is computed
// EXACTLY from f_k (up to Monte Carlo error over the reference pairs) — the true DPO loss, not a bound.
// Without the KL term its minimiser is ℓ = r/β_d + c, i.e. q* ∝ p_ref e^{r/β_d}; that F(f* = −r/β_d) is
// reported as the lower bound "dpo_optimum".
//
// First variation. Write φ(Δ) = −p log σ(β_d Δ) − (1−p) log σ(−β_d Δ); then φ'(Δ) = β_d (σ(β_d Δ) − p).
// Perturb q → q + ε δq (∫ δq = 0). Since ℓ_q = log q − log p_ref, δℓ_q(x) = δq(x) / q(x), and
//   δF = E_{x,x'}[ β_d (σ(β_d Δ(x,x')) − p(x,x')) · (δq(x)/q(x) − δq(x')/q(x')) ].
// Rename the variables of the second term (x ↔ x') and use σ(−a) = 1 − σ(a), p(x',x) = 1 − p(x,x'):
//   −E[β_d (σ(β_d Δ(x',x)) − p(x',x)) δq(x)/q(x)] = +E[β_d (σ(β_d Δ(x,x')) − p(x,x')) δq(x)/q(x)],
// so both terms are equal and, writing E_x[h(x) δq(x)/q(x)] = ∫ δq(y) h(y) p_ref(y)/q(y) dy,
//   g_q(y) = δF/δq (y) = 2 β_d · (p_ref(y) / q(y)) · E_{x'~p_ref}[ σ(β_d Δ_q(y, x')) − p(y, x') ]
//          = 2 β_d · Z e^{f(y)} · E_{x'~p_ref}[ σ(β_d (f(x') − f(y))) − σ(r(y) − r(x')) ]
// (defined up to an additive constant, like every first variation on probability measures). It is smooth in
// y when f and r are. Z e^{f(y)} = 1/(N π(y)) is where the self-normalised weights enter: points that q_k
// has tilted away from (large f) get a large first variation. Estimated with the partners x' = the first P
// reference samples (global order; the diagonal i = j excluded).
//
// KTO (Kahneman–Tversky value with a reference point, as in Diffusion-KTO, on reference samples). A sample is
// desirable (s(x) = +1) when r(x) ≥ τ and undesirable (s = −1) otherwise; λ_D, λ_U weight the two classes.
// The reference point is the KL of the tilt itself, z_q = KL(q ‖ p_ref) = E_q[ℓ_q] (KTO's z_0 = KL(π_θ‖π_ref)).
//   v_q(x) = σ(β_k s(x) (ℓ_q(x) − z_q)),    F(q) = E_{x~p_ref}[ λ(x) (1 − v_q(x)) ],   ℓ_q = −f − log Z exact.
// First variation. δℓ_q(x) = δq(x)/q(x) as above, and δz_q = ∫ δq ℓ_q + ∫ q δq/q = ∫ δq(y) ℓ_q(y) dy (∫δq = 0).
// With σ' = σ(1 − σ): δv(x) = β_k s(x) v(x)(1 − v(x)) (δq(x)/q(x) − δz_q), hence
//   δF = −∫ δq(y) λ(y) β_k s(y) v(y)(1 − v(y)) p_ref(y)/q(y) dy + C ∫ δq(y) ℓ_q(y) dy,
//   C = β_k E_{x~p_ref}[ λ(x) s(x) v(x)(1 − v(x)) ],
// so   g_q(y) = −β_k λ(y) s(y) v(y)(1 − v(y)) · Z e^{f(y)} + C · (−f(y) − log Z)      (up to a constant).
// Unlike Diffusion-KTO's detached batch estimate of z_0, the reference point here is differentiated: F is a
// functional of q and g is its exact first variation (checked against finite differences in test_ddo).
// τ defaults to the median reward of the reference samples (half desirable).
//
// Small β (optional stabiliser). Both first variations carry the density ratio p_ref/q = Z e^{f(y)}, unbounded
// where q_k has removed mass: at small β one over-suppressed point gets a huge negative g, the next fit drops
// its f far below the rest and it takes all the weight (ESS → 1). `max_ratio` > 0 caps the ratio at that value
// in the first variation (not in F): the step keeps its sign but is bounded where q/p_ref < 1/max_ratio. The
// cap changes the DA fixed point only on that set; F(q_k) is still reported exactly. 0 = exact (default).
#pragma once
#include <torch/torch.h>

#include <limits>
#include <memory>
#include <string>

#include "ddo/collective.h"

namespace dualign::ddo {

// Quantities of the tilt q ∝ p_ref e^{−f} from this rank's f_i [n_local] (float64), over all ranks' samples.
struct TiltStats {
  double kl = 0;   // KL(q ‖ p_ref), SNIS estimate
  double ess = 0;  // effective sample size of the weights, 1 / Σ π_i²
  double log_z = 0;
};
TiltStats tilt_stats(const torch::Tensor& f, dist::Comm* comm = nullptr);
double log_normaliser(const torch::Tensor& f, dist::Comm* comm = nullptr);  // log Z = log (1/N) Σ e^{−f_i}
torch::Tensor tilt_weights(const torch::Tensor& f, dist::Comm* comm = nullptr);  // this rank's π_i, float64
double tilt_mean(const torch::Tensor& f, const torch::Tensor& values, dist::Comm* comm = nullptr);  // E_q[values]

// Mean Bradley–Terry loss of pairs with logit β_d·delta and soft labels p: −p log σ(β_d Δ) − (1−p) log σ(−β_d Δ).
torch::Tensor bt_pair_loss(const torch::Tensor& delta, const torch::Tensor& labels, double beta_d);

class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::string name() const = 0;
  // F(q) for q ∝ p_ref e^{−f}; f = f(x_i) [n_local] float64 on this rank's reference samples. Collective.
  virtual double value(const torch::Tensor& f) const = 0;
  // g_q(x_i) [n_local] float64, centred (mean 0 over all reference samples). Collective.
  virtual torch::Tensor first_variation(const torch::Tensor& f) const = 0;
};

struct ObjectiveOptions {
  std::string name = "rlhf";  // rlhf | dpo | kto
  double dpo_beta = 1.0;      // β_d of the DPO logit
  int64_t partners = 1024;    // DPO: P partner samples (≤ N)
  double kto_beta = 1.0;      // β_k of the KTO value
  double kto_threshold = std::numeric_limits<double>::quiet_NaN();  // τ; NaN: the median reward
  double kto_desirable_weight = 1.0, kto_undesirable_weight = 1.0;  // λ_D, λ_U
  double max_ratio = 0;  // > 0: cap p_ref/q = Z e^{f} in the DPO/KTO first variations (see above); 0: exact
};

// r: rewards of this rank's reference samples [n_local]; `shard` says where they sit in the global set
// (shard.total == 0: one process holding all of them). Errors name the option.
std::unique_ptr<Objective> make_objective(const ObjectiveOptions& options, torch::Tensor r, const Shard& shard = {},
                                          dist::Comm* comm = nullptr);
std::unique_ptr<Objective> make_rlhf_objective(torch::Tensor r, const Shard& shard = {}, dist::Comm* comm = nullptr);
std::unique_ptr<Objective> make_dpo_objective(torch::Tensor r, double beta_d, int64_t partners, const Shard& shard = {},
                                              dist::Comm* comm = nullptr);

}  // namespace dualign::ddo
