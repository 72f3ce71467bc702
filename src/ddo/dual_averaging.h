// Dual averaging (DA) over distributions, as defined in docs/methods.md: minimise G(q) = F(q) + β KL(q ‖ p_ref) over Gibbs tilts
// q_k ∝ p_ref · exp(−f_k) of the reference. With weights w_j = j and W_k = Σ_{j≤k} w_j:
//   q_{k+1} ∝ p_ref · exp(−T_{k+1}),   T_{k+1} = Σ_{j≤k} w_j g_j / (β W_k + β′),   g_j = δF/δq at q_j.
// The network f_{k+1} regresses T_{k+1} on the N reference samples (drawn once). Only the previous potential
// is kept: since f_k ≈ T_k, Σ_{j<k} w_j g_j ≈ f_k · (β W_{k−1} + β′), so
//   T_{k+1} = (f_k · (β W_{k−1} + β′) + w_k g_k) / (β W_k + β′)         (da_target below)
// (the fitting error of f_k carries over, as in the paper's Algorithm D1). f_1 = 0, i.e. q_1 = p_ref.
// RLHF: g = −r for every k, so T_{k+1} = −r · W_k / (β W_k + β′): one step with β′ = 0 gives f = −r/β, and
// with β′ > 0 the iterates approach it as W_k grows (the fixed point q ∝ p_ref e^{r/β}).
// Under MPI each rank holds its shard of the reference samples; the objective's statistics are all-reduced
// and the fit's gradients summed, so f_k is the same on every rank. The loop can start from a saved state
// (f_k, k, the records so far): the fit seeds depend only on k, so a resumed run repeats an uninterrupted one.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <limits>
#include <vector>

#include "ddo/objective.h"
#include "ddo/potential.h"

namespace dualign::ddo {

struct DaOptions {
  double beta = 1.0;
  double beta_prime = -1;  // < 0: β′ = β (the paper's experiments)
  int64_t iterations = 5;
  FitOptions fit;
};

// One line of the DA log: the state of q_k (before its step; k = K + 1 is the final iterate).
struct DaRecord {
  int64_t k = 0;
  double objective = 0;  // F(q_k): the TRUE objective (exact up to Monte Carlo over the reference samples)
  double kl = 0;         // KL(q_k ‖ p_ref)
  double regularised = 0;  // G(q_k) = F + β KL
  double ess = 0;        // effective sample size of exp(−f_k) over the N reference samples
  double reward = 0;     // E_{q_k}[r]
  double fit_rmse = 0;   // RMSE of the fit of f_k to its target T_k (0 for k = 1)
  double target_std = 0;
  double heldout = std::numeric_limits<double>::quiet_NaN();  // DaHooks::heldout(f_k), if given
};
inline constexpr int64_t kDaRecordFields = 10;
torch::Tensor records_to_tensor(const std::vector<DaRecord>& records);  // [K, kDaRecordFields] float64
std::vector<DaRecord> records_from_tensor(const torch::Tensor& t);     // errors name the shape

// Where the loop stands: the record of q_{next_k} is the next to be made (next_k = 1: a fresh start, f = 0).
struct DaState {
  int64_t next_k = 1;
  std::vector<DaRecord> records;  // of q_1 .. q_{next_k − 1}
  FitResult last_fit;             // the fit that produced f_{next_k}
};

struct DaHooks {
  std::function<void(const DaRecord&)> on_record;  // each new record (collective calls allowed)
  std::function<void(const DaState&)> on_step;     // after each fit: f holds f_{next_k} (checkpoint here)
  std::function<double(Potential&)> heldout;       // an extra statistic of f_k logged in every record
};

// T_{k+1} from f_k and g_k on the reference samples (k ≥ 1, w_j = j).
torch::Tensor da_target(const torch::Tensor& f_k, const torch::Tensor& g_k, int64_t k, double beta, double beta_prime);

// Runs DA up to `options.iterations` steps, fitting `f` in place. From `state` (default: a fresh start, f must
// be 0) to the record of q_{K+1}. x_ref [n_local, D] this rank's reference samples (`shard`), r [n_local] their
// rewards (for the log). Returns all records (the state's and the new ones). Collective under MPI.
std::vector<DaRecord> run_dual_averaging(Potential& f, const torch::Tensor& x_ref, const torch::Tensor& r,
                                         const Objective& objective, const DaOptions& options, DaState state = {},
                                         const DaHooks& hooks = {}, const Shard& shard = {}, dist::Comm* comm = nullptr);

}  // namespace dualign::ddo
