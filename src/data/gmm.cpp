#include "data/gmm.h"

#include <cmath>

#include "util/error.h"

namespace dualign::data {

Gmm::Gmm(const std::vector<std::vector<double>>& mu, const std::vector<double>& w, double sigma) : std(sigma) {
  DUALIGN_CHECK(!mu.empty() && mu.size() == w.size(), "GMM: {} means but {} weights", mu.size(), w.size());
  DUALIGN_CHECK(sigma > 0, "GMM: std must be > 0, got {}", sigma);
  const auto d = static_cast<int64_t>(mu[0].size());
  means = torch::empty({static_cast<int64_t>(mu.size()), d}, torch::kFloat64);
  for (size_t k = 0; k < mu.size(); ++k) {
    DUALIGN_CHECK(static_cast<int64_t>(mu[k].size()) == d, "GMM: mean {} has {} dims, expected {}", k, mu[k].size(), d);
    for (int64_t j = 0; j < d; ++j) means[k][j] = mu[k][j];
  }
  weights = torch::tensor(w, torch::kFloat64);
  DUALIGN_CHECK((weights >= 0).all().item<bool>(), "GMM: weights must be non-negative");
  weights = weights / weights.sum();
}

torch::Tensor Gmm::sample(int64_t n, torch::Generator& gen) const {
  auto k = at::multinomial(weights, n, /*replacement=*/true, gen);
  auto noise = at::normal(0.0, 1.0, {n, dim()}, gen).to(torch::kFloat64);
  return (means.index_select(0, k) + std * noise).to(torch::kFloat32);
}

torch::Tensor Gmm::log_prob(const torch::Tensor& x) const {
  auto xd = x.to(torch::kFloat64);
  auto d2 = (xd.unsqueeze(1) - means.unsqueeze(0)).pow(2).sum(-1);  // [n, K]
  double var = std * std;
  auto log_comp = -0.5 * d2 / var - 0.5 * dim() * std::log(2 * M_PI * var);
  return torch::logsumexp(log_comp + weights.log().unsqueeze(0), 1);
}

torch::Tensor Gmm::noised_score(const torch::Tensor& x, double a, double s) const {
  auto xd = x.to(torch::kFloat64);
  double var = a * a * std * std + s * s;
  auto diff = xd.unsqueeze(1) - a * means.unsqueeze(0);          // [n, K, D]
  auto logits = -0.5 * diff.pow(2).sum(-1) / var + weights.log();  // [n, K]
  auto resp = torch::softmax(logits, 1).unsqueeze(-1);
  return -(resp * diff).sum(1) / var;
}

}  // namespace dualign::data
