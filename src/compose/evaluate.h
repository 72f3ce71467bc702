// Evaluating one weight setting λ of a composition (run by every rank; collectives inside):
//   - samples of the setting's sampler (DDIM on ε_λ; annealed Langevin on ε_λ; or the primal student),
//   - KL̂_i(λ) by Lemma 2 (mean ± se over the samples),
//   - per-model rewards r_i (mean ± se; one reward config per component, e.g. a classifier's log-probability of
//     the model's class subset), and for Gaussian-mixture components the exact per-model log-likelihood,
//   - exact answers when every component is a 2-D Gaussian mixture: KL(q_AND^{(λ)} ‖ q_i) on a grid, and the KL
//     of the drawn samples themselves, −Ĥ_kNN − mean log q_i.
// Summaries: kl_ratio = max_i KL_i / min_i KL_i (1 = balanced) and the minimum per-model reward.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "compose/composer.h"
#include "compose/exact_gmm.h"
#include "rewards/reward.h"

namespace dualign::compose {

struct EvalInputs {
  std::vector<std::unique_ptr<rewards::Reward>>* rewards = nullptr;  // one per component, or none
  std::vector<data::Gmm> gmms;                                       // one per component, or none
  const GridProduct* grid = nullptr;                                 // with gmms (2-D)
  int64_t n = 1000;
  uint64_t seed = 0;
};

// `sampler`: "ddim" | "langevin" | "student". Returns the JSON record (identical on every rank) and, through
// `samples`, all n samples (CPU) for plots.
nlohmann::ordered_json evaluate_setting(Composer& composer, dist::Comm& comm, const std::vector<double>& lambda,
                                        const std::string& sampler, const EvalInputs& in, torch::Tensor* samples);

double kl_ratio(const std::vector<double>& kl);

}  // namespace dualign::compose
