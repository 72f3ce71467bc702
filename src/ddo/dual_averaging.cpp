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

torch::Tensor records_to_tensor(const std::vector<DaRecord>& records) {
  auto t = torch::zeros({int64_t(records.size()), kDaRecordFields}, torch::kDouble);
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const double row[kDaRecordFields] = {double(r.k), r.objective, r.kl,       r.regularised, r.ess,
                                         r.reward,    r.fit_rmse,  r.target_std, r.heldout,   0.0};
    for (int64_t j = 0; j < kDaRecordFields; ++j) t[int64_t(i)][j] = row[j];
  }
  return t;
}

std::vector<DaRecord> records_from_tensor(const torch::Tensor& t) {
  DUALIGN_CHECK(t.dim() == 2 && t.size(1) == kDaRecordFields, "DA records: expected a [K, {}] tensor, got {}",
                kDaRecordFields, c10::str(t.sizes()));
  auto a = t.to(torch::kDouble).contiguous();
  std::vector<DaRecord> out;
  for (int64_t i = 0; i < a.size(0); ++i) {
    auto row = a[i];
    auto v = [&](int64_t j) { return row[j].item<double>(); };
    out.push_back({int64_t(v(0)), v(1), v(2), v(3), v(4), v(5), v(6), v(7), v(8)});
  }
  return out;
}

std::vector<DaRecord> run_dual_averaging(Potential& f, const torch::Tensor& x_ref, const torch::Tensor& r,
                                         const Objective& objective, const DaOptions& o, DaState state,
                                         const DaHooks& hooks, const Shard& shard, dist::Comm* comm) {
  DUALIGN_CHECK(o.iterations >= 0, "ddo.iterations must be >= 0, got {}", o.iterations);
  DUALIGN_CHECK(state.next_k >= 1 && int64_t(state.records.size()) == state.next_k - 1,
                "DA state: {} records for next k = {}", state.records.size(), state.next_k);
  const double beta_prime = o.beta_prime < 0 ? o.beta : o.beta_prime;
  auto values = [&] {
    torch::NoGradGuard no_grad;
    return f->forward(x_ref).to(torch::kDouble).cpu();
  };
  auto rd = r.to(torch::kDouble).cpu();
  for (int64_t k = state.next_k; k <= o.iterations + 1; ++k) {
    auto fk = values();
    const auto stats = tilt_stats(fk, comm);
    DaRecord rec;
    rec.k = k;
    rec.objective = objective.value(fk);
    rec.kl = stats.kl;
    rec.regularised = rec.objective + o.beta * stats.kl;
    rec.ess = stats.ess;
    rec.reward = tilt_mean(fk, rd, comm);
    rec.fit_rmse = state.last_fit.rmse;
    rec.target_std = state.last_fit.target_std;
    if (hooks.heldout) rec.heldout = hooks.heldout(f);
    state.records.push_back(rec);
    state.next_k = k + 1;
    if (hooks.on_record) hooks.on_record(rec);
    if (k > o.iterations) break;
    auto target = da_target(fk, objective.first_variation(fk), k, o.beta, beta_prime);
    const bool finite = sum_all(comm, torch::isfinite(target).all().item<bool>() ? 0.0 : 1.0) == 0.0;
    DUALIGN_CHECK(finite,
                  "DA step {} ({}): the regression target is not finite (the first variation overflowed; a larger "
                  "ddo.beta keeps the tilts milder)", k, objective.name());
    FitOptions fo = o.fit;
    fo.seed = o.fit.seed + uint64_t(k);
    state.last_fit = fit_potential(f, x_ref, target.to(x_ref.device()), fo, shard, comm);
    if (hooks.on_step) hooks.on_step(state);
  }
  return state.records;
}

}  // namespace dualign::ddo
