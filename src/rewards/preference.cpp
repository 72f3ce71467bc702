#include "rewards/preference.h"

#include <cmath>

#include "util/error.h"

namespace dualign::rewards {
namespace {

void check_rewards(const torch::Tensor& r, const char* what) {
  DUALIGN_CHECK(r.dim() == 1, "{}: expected rewards [N], got {} dimensions", what, r.dim());
  DUALIGN_CHECK(torch::isfinite(r).all().item<bool>(), "{}: rewards must be finite", what);
}

}  // namespace

torch::Tensor bradley_terry_probability(const torch::Tensor& r_a, const torch::Tensor& r_b, double beta) {
  check_rewards(r_a, "bradley_terry r_a");
  check_rewards(r_b, "bradley_terry r_b");
  DUALIGN_CHECK(r_a.size(0) == r_b.size(0), "bradley_terry: {} rewards for a, {} for b", r_a.size(0), r_b.size(0));
  DUALIGN_CHECK(beta > 0, "Bradley-Terry beta must be > 0 (inf = deterministic), got {}", beta);
  auto diff = r_a.to(torch::kCPU, torch::kDouble) - r_b.to(torch::kCPU, torch::kDouble);
  if (std::isinf(beta)) return (diff >= 0).to(torch::kDouble);
  return torch::sigmoid(beta * diff);
}

torch::Tensor bradley_terry_labels(const torch::Tensor& r_a, const torch::Tensor& r_b, double beta, at::Generator& gen) {
  auto p = bradley_terry_probability(r_a, r_b, beta);
  if (std::isinf(beta)) return p > 0.5;
  return torch::rand({p.size(0)}, gen, torch::kDouble) < p;
}

Desirability kto_desirability(const torch::Tensor& r, double beta, at::Generator& gen) {
  check_rewards(r, "kto_desirability");
  DUALIGN_CHECK(r.size(0) > 0, "kto_desirability: no samples");
  DUALIGN_CHECK(beta > 0, "Bradley-Terry beta must be > 0 (inf = deterministic), got {}", beta);
  auto rd = r.to(torch::kCPU, torch::kDouble);
  Desirability out;
  out.median = rd.median().item<double>();
  if (std::isinf(beta)) {
    out.desirable = rd > out.median;
  } else {
    auto p = torch::sigmoid(beta * (rd - out.median));
    out.desirable = torch::rand({rd.size(0)}, gen, torch::kDouble) < p;
  }
  return out;
}

PairSummary summarize_pairs(const torch::Tensor& score_w, const torch::Tensor& score_l, double beta) {
  auto w = score_w.to(torch::kCPU, torch::kDouble), l = score_l.to(torch::kCPU, torch::kDouble);
  PairSummary s;
  if (w.numel() == 0) return s;
  auto gap = w - l;
  s.mean_winner = w.mean().item<double>();
  s.mean_loser = l.mean().item<double>();
  s.agreement = ((gap > 0).to(torch::kDouble) + 0.5 * (gap == 0).to(torch::kDouble)).mean().item<double>();
  s.mean_abs_gap = gap.abs().mean().item<double>();
  s.expected_agreement = bradley_terry_probability(gap.abs(), torch::zeros_like(gap), beta).mean().item<double>();
  if (std::isinf(beta)) s.expected_agreement = 1.0 - 0.5 * (gap == 0).to(torch::kDouble).mean().item<double>();
  return s;
}

}  // namespace dualign::rewards
