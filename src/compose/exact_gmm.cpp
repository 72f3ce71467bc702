#include "compose/exact_gmm.h"

#include <cmath>
#include <limits>

#include "dual/projection.h"
#include "util/error.h"

namespace dualign::compose {

GridProduct::GridProduct(std::vector<data::Gmm> components, int64_t n, double margin)
    : components_(std::move(components)) {
  DUALIGN_CHECK(!components_.empty(), "exact product: no components");
  for (const auto& g : components_)
    DUALIGN_CHECK(g.dim() == 2, "exact product: the grid is 2-D, a component has {} dimensions", g.dim());
  double lo = 1e300, hi = -1e300, max_std = 0;
  for (const auto& g : components_) {
    lo = std::min(lo, g.means.min().item<double>());
    hi = std::max(hi, g.means.max().item<double>());
    max_std = std::max(max_std, g.std);
  }
  lo -= margin * max_std;
  hi += margin * max_std;
  cell_ = (hi - lo) / double(n);
  cell_area_ = cell_ * cell_;
  auto axis = lo + (torch::arange(n, torch::kFloat64) + 0.5) * cell_;  // cell centres
  auto grid = torch::meshgrid({axis, axis}, "ij");
  points_ = torch::stack({grid[0].reshape(-1), grid[1].reshape(-1)}, 1);
  std::vector<torch::Tensor> logs;
  for (const auto& g : components_) logs.push_back(g.log_prob(points_));
  log_q_ = torch::stack(logs, 0);
}

torch::Tensor GridProduct::log_product(const std::vector<double>& lambda) const {
  DUALIGN_CHECK(lambda.size() == components_.size(), "exact product: {} weights for {} components", lambda.size(),
                components_.size());
  double total = 0;
  for (double l : lambda) total += l;
  DUALIGN_CHECK(total > 0, "exact product: the weights sum to {}", total);
  auto lam = torch::tensor(lambda, torch::kFloat64) / total;
  auto lp = (lam.unsqueeze(1) * log_q_).sum(0);
  return lp - (torch::logsumexp(lp, 0) + std::log(cell_area_));
}

std::vector<double> GridProduct::kl(const std::vector<double>& lambda) const {
  auto lp = log_product(lambda);
  auto mass = lp.exp() * cell_area_;
  std::vector<double> out;
  for (size_t i = 0; i < components_.size(); ++i)
    out.push_back((mass * (lp - log_q_[int64_t(i)])).sum().item<double>());
  return out;
}

std::vector<double> GridProduct::expected_log_q(const std::vector<double>& lambda) const {
  auto mass = log_product(lambda).exp() * cell_area_;
  std::vector<double> out;
  for (size_t i = 0; i < components_.size(); ++i) out.push_back((mass * log_q_[int64_t(i)]).sum().item<double>());
  return out;
}

std::vector<double> GridProduct::minimax_lambda(int64_t iterations, double lr) const {
  std::vector<double> lambda(components_.size(), 1.0 / double(components_.size()));
  for (int64_t k = 0; k < iterations; ++k) {
    auto g = kl(lambda);
    for (auto& v : g) v *= lr;
    lambda = dual::ascend("simplex", lambda, g);
  }
  return lambda;
}

torch::Tensor GridProduct::sample(const std::vector<double>& lambda, int64_t n, uint64_t seed) const {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto idx = at::multinomial(log_product(lambda).exp(), n, /*replacement=*/true, gen);
  auto jitter = (at::rand({n, 2}, gen, torch::kFloat64) - 0.5) * cell_;
  return (points_.index_select(0, idx) + jitter).to(torch::kFloat32);
}

double knn_entropy(const torch::Tensor& x) {
  auto xd = x.to(torch::kFloat64).flatten(1);
  const int64_t n = xd.size(0), d = xd.size(1);
  DUALIGN_CHECK(n >= 3, "k-NN entropy needs at least 3 samples, got {}", n);
  std::vector<torch::Tensor> nn;
  for (int64_t s = 0; s < n; s += 1024) {  // blocks keep the distance matrix small
    const int64_t len = std::min<int64_t>(1024, n - s);
    auto dist = torch::cdist(xd.narrow(0, s, len), xd);
    dist.narrow(1, s, len).fill_diagonal_(std::numeric_limits<double>::infinity());
    nn.push_back(std::get<0>(dist.min(1)).clamp_min(1e-12));
  }
  auto r = torch::cat(nn);
  // Ĥ = ψ(n) − ψ(1) + log V_d + (d/n) Σ log r_i,  V_d = π^{d/2} / Γ(d/2 + 1).
  const double euler = 0.5772156649015329;
  const double psi_n = std::log(double(n)) - 1.0 / (2.0 * double(n));
  const double log_vd = 0.5 * double(d) * std::log(M_PI) - std::lgamma(0.5 * double(d) + 1.0);
  return psi_n + euler + log_vd + double(d) * r.log().mean().item<double>();
}

}  // namespace dualign::compose
