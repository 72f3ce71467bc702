// Isotropic Gaussian mixture Σ w_k N(m_k, s_k² I): exact noisy marginals, ε and log densities under a schedule,
// in discrete (int64 t) or continuous (float t, all equal) time.
#pragma once
#include <torch/torch.h>

#include <cmath>

#include "diffusion/schedule.h"

namespace dualign::diffusion::test_targets {

struct Gmm {
  torch::Tensor weights;  // [K]
  torch::Tensor means;    // [K, D]
  torch::Tensor stds;     // [K]

  static double alpha_bar(const NoiseSchedule& s, const torch::Tensor& t) {
    auto t0 = t.reshape({-1})[0];
    return t.is_floating_point() ? s.alpha_bar_continuous(t0.item<double>()) : s.alpha_bar(t0.item<int64_t>());
  }

  // log p_a(x) [B] of the noisy marginal with ᾱ = a: components N(sqrt(a) m_k, (a s_k² + 1 - a) I).
  torch::Tensor log_prob(const torch::Tensor& x, double a) const {
    const double d = double(means.size(1));
    auto var = a * stds.pow(2) + (1 - a);                                  // [K]
    auto diff = x.unsqueeze(1) - std::sqrt(a) * means.unsqueeze(0);         // [B, K, D]
    auto logn = -0.5 * diff.pow(2).sum(2) / var - 0.5 * d * (2 * M_PI * var).log();  // [B, K]
    return torch::logsumexp(logn + weights.log(), 1);
  }

  // ε*(x, t) = -sqrt(1-ᾱ) ∇ log p_t(x), in closed form (differentiable in x).
  torch::Tensor eps(const NoiseSchedule& s, const torch::Tensor& x, const torch::Tensor& t) const {
    const double a = alpha_bar(s, t), d = double(means.size(1));
    auto var = a * stds.pow(2) + (1 - a);
    auto diff = x.unsqueeze(1) - std::sqrt(a) * means.unsqueeze(0);
    auto logn = -0.5 * diff.pow(2).sum(2) / var - 0.5 * d * (2 * M_PI * var).log();
    auto r = torch::softmax(logn + weights.log(), 1);                       // [B, K]
    auto score = -(r.unsqueeze(2) * diff / var.reshape({1, -1, 1})).sum(1);  // [B, D]
    return -std::sqrt(1 - a) * score;
  }

  torch::Tensor mean() const { return (weights.unsqueeze(1) * means).sum(0); }
  // per-dimension variance of the mixture
  torch::Tensor var() const {
    auto second = (weights.unsqueeze(1) * (means.pow(2) + stds.pow(2).unsqueeze(1))).sum(0);
    return second - mean().pow(2);
  }
};

inline Gmm two_d_mixture() {
  auto f64 = torch::kFloat64;
  return {torch::tensor({0.5, 0.3, 0.2}, f64),
          torch::tensor({{-1.5, 0.0}, {1.0, 1.0}, {1.0, -1.5}}, f64),
          torch::tensor({0.4, 0.3, 0.5}, f64)};
}

}  // namespace dualign::diffusion::test_targets
