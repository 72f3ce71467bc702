// Preference labels from rewards.
//
// Pairs (Bradley–Terry): P(a ≻ b) = σ(β_bt · (r_a − r_b)); the label is one Bernoulli draw from a seeded
// generator, so the same seed gives the same labels. β_bt = +inf gives the deterministic argmax (a wins ties).
//
// KTO desirability: desirable ~ Bernoulli(σ(β_bt · (r − median r))); β_bt = +inf → r > median (top half).
// The median, not the mean (as in `dualign data gmm-labelled`), centres the split because classifier log-prob
// rewards are heavily skewed: about half the samples are desirable whatever the reward's scale.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/torch.h>

namespace dualign::rewards {

// σ(β (r_a − r_b)) as float64 [N]; β = inf → 1 where r_a >= r_b, else 0.
torch::Tensor bradley_terry_probability(const torch::Tensor& r_a, const torch::Tensor& r_b, double beta);
// bool [N]: true where a is preferred (one draw per pair from `gen`).
torch::Tensor bradley_terry_labels(const torch::Tensor& r_a, const torch::Tensor& r_b, double beta, at::Generator& gen);

// bool [N]: desirable samples for KTO (rule above). Also returns the median it used.
struct Desirability {
  torch::Tensor desirable;  // bool [N]
  double median = 0;
};
Desirability kto_desirability(const torch::Tensor& r, double beta, at::Generator& gen);

// Summary numbers of a labelled pair set (scores as stored: winner / loser).
struct PairSummary {
  double mean_winner = 0, mean_loser = 0;
  double agreement = 0;           // fraction of pairs with score_w > score_l (ties count 1/2)
  double expected_agreement = 0;  // its expectation under Bradley–Terry: mean σ(β |Δr|)
  double mean_abs_gap = 0;        // mean |score_w − score_l|
};
PairSummary summarize_pairs(const torch::Tensor& score_w, const torch::Tensor& score_l, double beta);

}  // namespace dualign::rewards
