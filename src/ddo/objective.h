// Objectives F(q) of DDO, evaluated for the Gibbs tilt q ∝ p_ref · exp(−f) through a fixed set of N reference
// samples x_i ~ p_ref (drawn once). Expectations under q use self-normalised weights
//   π_i = exp(−f_i) / Σ_j exp(−f_j),   f_i = f(x_i),
// and the normaliser Z = E_ref[exp(−f)] ≈ (1/N) Σ_j exp(−f_j). The regularised objective is
//   G(q) = F(q) + β · KL(q ‖ p_ref),   KL ≈ Σ_i π_i log(N π_i) = Σ_i π_i (−f_i) − log Z.
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
// reference samples (the diagonal i = j excluded).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

namespace dualign::ddo {

// Quantities of the tilt q ∝ p_ref e^{−f} from f_i [N] (float64).
struct TiltStats {
  double kl = 0;   // KL(q ‖ p_ref), SNIS estimate
  double ess = 0;  // effective sample size of the weights, 1 / Σ π_i²
  double log_z = 0;
};
TiltStats tilt_stats(const torch::Tensor& f);
torch::Tensor tilt_weights(const torch::Tensor& f);  // π [N], float64

class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::string name() const = 0;
  // F(q) for q ∝ p_ref e^{−f}; f = f(x_i) [N] float64 on the reference samples.
  virtual double value(const torch::Tensor& f) const = 0;
  // g_q(x_i) [N] float64, centred (mean 0 over the reference samples).
  virtual torch::Tensor first_variation(const torch::Tensor& f) const = 0;
};

// r: rewards of the reference samples [N].
std::unique_ptr<Objective> make_rlhf_objective(torch::Tensor r);
// beta_d: the DPO β (of the log-ratio in the Bradley–Terry logit); partners: P (≤ N) partner samples.
std::unique_ptr<Objective> make_dpo_objective(torch::Tensor r, double beta_d, int64_t partners);
// "rlhf" | "dpo"; errors name the value.
std::unique_ptr<Objective> make_objective(const std::string& name, torch::Tensor r, double beta_d, int64_t partners);

}  // namespace dualign::ddo
