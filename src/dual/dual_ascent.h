// Projected dual ascent for constraints g_i(θ) ≤ 0, identical on every rank.
//
//   λ ← Π(λ + η_k · ĝ),   η_k = lr · min(1, k / warmup_updates) · lr_decay^k
//
// ĝ_i is the global mean of the samples of g_i added since the last update (their sums and counts are
// all-reduced in one collective), optionally smoothed by an EMA (Sohrabi et al. 2024 use one to cut the
// variance of the slack). Π is one of dual/projection.h. Callers express their constraints in "≤ 0" form:
// E[r_i] ≥ b_i adds samples of b_i − r_i; KL_i ≤ u adds samples of KL_i; and so on.
//
// controller: nupi adds the proportional term of the νPI controller (Sohrabi et al. 2024, the one the constrained-
// alignment reference code ships), which damps the oscillation of an integral-only update on noisy slacks:
//   ξ_k = ν ξ_{k−1} + (1 − ν) ĝ_k   (ξ_0 = 0),   λ ← Π(λ + η_k ĝ_k + κ_p,k (ξ_k − ξ_{k−1}))
// κ_p,k = kp · (η_k / lr): the same warm-up and decay as η. kp = 0 is plain ascent (the reference scripts' setting).
//
// Config (e.g. `method.dual`):
//   projection: nonneg | simplex | sumzero_clip     init: [λ_1, ..., λ_m] (or one number for all)
//   lr: 0.05   lr_decay: 1.0   warmup_updates: 0   slack_ema: 0.0 (0 = no smoothing)   every: 1 (steps)
//   controller: ascent | nupi    kp: 0.0 (> 0 needs nupi)    nu: 0.1
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dualign::config {
class Section;
}
namespace dualign::dist {
class Comm;
}

namespace dualign::dual {

struct DualSettings {
  std::string projection = "nonneg";
  std::vector<double> init;  // one per constraint
  double lr = 0.05;
  double lr_decay = 1.0;
  int64_t warmup_updates = 0;
  double slack_ema = 0.0;
  int64_t every = 1;
  std::string controller = "ascent";  // ascent | nupi
  double kp = 0.0, nu = 0.1;

  // Reads the keys above from `section` (strict) for `m` constraints; a scalar `init` is repeated m times.
  static DualSettings read(const config::Section& section, size_t m);
};

class DualAscent {
 public:
  DualAscent(std::vector<std::string> names, DualSettings settings);

  // A local sample sum (and count) of constraint i's value g_i, to be averaged over all ranks at the update.
  void add(size_t i, double sum, double count = 1.0);
  // The same with the sum still on the device (a one-element tensor): it accumulates there and reaches the host
  // only at the update, so a training micro-step that adds its slacks makes no host sync.
  void add(size_t i, const torch::Tensor& sum, double count = 1.0);
  // Every constraint at once, sums and counts both float64 [m] on the device (counts may be 0).
  void add_all(const torch::Tensor& sums, const torch::Tensor& counts);
  // Every rank calls this after each optimizer step (`step` = completed steps). Every `every` steps it
  // all-reduces the window, updates λ and returns the scalars to log:
  //   dual/<name>/lambda, dual/<name>/value (window mean of g_i), dual/<name>/ema (if smoothing).
  // Other steps return {} and do no communication.
  std::map<std::string, double> end_step(int64_t step, dist::Comm& comm);

  std::vector<double> lambda() const;
  const std::vector<std::string>& names() const { return names_; }
  int64_t updates() const { return updates_.item<int64_t>(); }

  // Tensors to checkpoint (λ, the EMA, the update counter, and νPI's ξ with controller nupi); restoring copies into
  // them in place.
  std::map<std::string, torch::Tensor> state();

 private:
  void start_device_window(const torch::Tensor& like);  // float64 zeros on like's device, once

  std::vector<std::string> names_;
  DualSettings s_;
  std::vector<double> sums_, counts_;  // local window, cleared at each update
  torch::Tensor device_sums_, device_counts_;  // float64 [m] on the device of the first tensor added, part of the window
  torch::Tensor lambda_, ema_, updates_;  // float64 [m], float64 [m], int64 scalar
  torch::Tensor pi_xi_;                   // νPI's ξ, float64 [m]
};

}  // namespace dualign::dual
