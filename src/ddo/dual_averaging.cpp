#include "ddo/dual_averaging.h"

#include "util/error.h"

namespace dualign::ddo {

torch::Tensor da_target(const torch::Tensor& f_k, const torch::Tensor& g_k, int64_t k, double beta, double beta_prime) {
  DUALIGN_CHECK(k >= 1, "da_target: k must be >= 1, got {}", k);
  DUALIGN_CHECK(beta > 0 && beta_prime >= 0, "da_target: need beta > 0 and beta' >= 0, got {} and {}", beta, beta_prime);
  const double w_k = double(k), W_prev = double(k - 1) * double(k) / 2, W_k = W_prev + w_k;
  auto past = f_k.to(torch::kDouble) * (beta * W_prev + beta_prime);  // ≈ Σ_{j<k} w_j g_j
  return (past + w_k * g_k.to(torch::kDouble)) / (beta * W_k + beta_prime);
}

std::vector<DaRecord> run_dual_averaging(Potential& f, const torch::Tensor& x_ref, const torch::Tensor& r,
                                         const Objective& objective, const DaOptions& o,
                                         const std::function<void(const DaRecord&)>& on_record) {
  DUALIGN_CHECK(o.iterations >= 0, "--iterations must be >= 0, got {}", o.iterations);
  const double beta_prime = o.beta_prime < 0 ? o.beta : o.beta_prime;
  auto values = [&] {
    torch::NoGradGuard no_grad;
    return f->forward(x_ref).to(torch::kDouble).cpu();
  };
  auto rd = r.to(torch::kDouble).cpu();
  std::vector<DaRecord> log;
  FitResult fit;
  for (int64_t k = 1; k <= o.iterations + 1; ++k) {
    auto fk = values();
    const auto stats = tilt_stats(fk);
    DaRecord rec;
    rec.k = k;
    rec.objective = objective.value(fk);
    rec.kl = stats.kl;
    rec.regularised = rec.objective + o.beta * stats.kl;
    rec.ess = stats.ess;
    rec.reward = (tilt_weights(fk) * rd).sum().item<double>();
    rec.fit_rmse = fit.rmse;
    rec.target_std = fit.target_std;
    log.push_back(rec);
    if (on_record) on_record(rec);
    if (k > o.iterations) break;
    auto target = da_target(fk, objective.first_variation(fk), k, o.beta, beta_prime);
    DUALIGN_CHECK(torch::isfinite(target).all().item<bool>(),
                  "DA step {} ({}): the regression target is not finite (the first variation overflowed; a larger "
                  "--beta keeps the tilts milder)", k, objective.name());
    FitOptions fo = o.fit;
    fo.seed = o.fit.seed + uint64_t(k);
    fit = fit_potential(f, x_ref, target.to(x_ref.device()), fo);
  }
  return log;
}

}  // namespace dualign::ddo
