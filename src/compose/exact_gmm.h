// Exact answers for compositions of Gaussian-mixture components in 2-D (or any low dimension on a grid).
// q_AND^{(λ)} ∝ Π_i q_i^{λ_i} (Σλ = 1) is not a mixture for fractional λ, but its log-density is known up to
// log Z: on a regular grid covering the components, Z and KL(q_AND^{(λ)} ‖ q_i) = E[log q_AND − log q_i] are
// Riemann sums (the densities are smooth on the grid scale; 400² points make the quadrature error ≪ 1e-3 here).
//
// Also the Kozachenko–Leonenko (k = 1) entropy estimate, which turns a sample set into a KL estimate against
// an exact density: KL(p ‖ q) ≈ −Ĥ(p) − mean log q(x): the KL of what a sampler actually produced.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "data/gmm.h"

namespace dualign::compose {

class GridProduct {
 public:
  // The grid spans every component mean ± `margin` standard deviations (largest std), n points per axis.
  GridProduct(std::vector<data::Gmm> components, int64_t n = 400, double margin = 6.0);

  // KL(q_AND^{(λ)} ‖ q_i) for every i (λ normalised to sum 1).
  std::vector<double> kl(const std::vector<double>& lambda) const;
  // E_{q_AND^{(λ)}}[log q_i] for every i: the per-model log-likelihood "reward" of the exact product.
  std::vector<double> expected_log_q(const std::vector<double>& lambda) const;
  // The minimax weights argmin_λ max_i KL(q_AND^{(λ)} ‖ q_i), by projected ascent on the exact KLs (a
  // reference answer, not a training dual variable): `iterations` steps of size `lr` from uniform.
  std::vector<double> minimax_lambda(int64_t iterations = 500, double lr = 0.2) const;
  // n exact samples of q_AND^{(λ)}: grid cells drawn ∝ mass, uniform jitter within the cell.
  torch::Tensor sample(const std::vector<double>& lambda, int64_t n, uint64_t seed) const;

  int64_t points() const { return points_.size(0); }

 private:
  torch::Tensor log_product(const std::vector<double>& lambda) const;  // normalised log-density on the grid

  std::vector<data::Gmm> components_;
  torch::Tensor points_;  // [P, 2] float64
  torch::Tensor log_q_;   // [m, P]
  double cell_ = 0, cell_area_ = 0;
};

// Kozachenko–Leonenko differential entropy estimate (nats) of samples x [n, d] with the nearest neighbour.
double knn_entropy(const torch::Tensor& x);

}  // namespace dualign::compose
