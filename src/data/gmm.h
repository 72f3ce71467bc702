// A Gaussian mixture with isotropic components: exact samples, log-density and score. The 2-D toy problems
// (pretraining, preference tilts, composition) are checked against these closed forms.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace dualign::data {

struct Gmm {
  torch::Tensor means;    // [K, D] float64
  torch::Tensor weights;  // [K] float64, sums to 1
  double std = 1.0;

  Gmm(const std::vector<std::vector<double>>& means, const std::vector<double>& weights, double std);
  int64_t dim() const { return means.size(1); }

  torch::Tensor sample(int64_t n, torch::Generator& gen) const;  // [n, D] float32
  torch::Tensor log_prob(const torch::Tensor& x) const;          // [n] float64
  // Score of the mixture convolved with the forward process at noise level (a = sqrt(ᾱ), s = sqrt(1-ᾱ)):
  // x_t ~ sum_k w_k N(a mu_k, (a^2 std^2 + s^2) I). Returns grad log p_t(x) [n, D].
  torch::Tensor noised_score(const torch::Tensor& x, double a, double s) const;
};

}  // namespace dualign::data
