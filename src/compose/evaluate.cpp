#include "compose/evaluate.h"

#include <algorithm>

#include "dist/comm.h"
#include "eval/metrics.h"
#include "util/error.h"
#include "util/seed.h"

namespace dualign::compose {
namespace {

using Json = nlohmann::ordered_json;

torch::Tensor gather_rows(dist::Comm& comm, const torch::Tensor& local, int64_t n) {
  if (comm.size() == 1) return local;
  DUALIGN_CHECK(n % comm.size() == 0, "evaluation: {} samples do not split evenly over {} ranks", n, comm.size());
  std::vector<int64_t> shape(local.sizes().begin(), local.sizes().end());
  shape[0] = n;
  auto out = torch::empty(shape, local.options());
  comm.all_gather(out, local.contiguous());
  return out;
}

Json mean_se_json(const torch::Tensor& column) {
  auto s = eval::mean_se(column);
  return Json{{"mean", s.mean}, {"se", s.se}};
}

std::vector<double> means(const Json& list) {
  std::vector<double> out;
  for (const auto& j : list) out.push_back(j.is_object() ? j["mean"].get<double>() : j.get<double>());
  return out;
}

}  // namespace

double kl_ratio(const std::vector<double>& kl) {
  auto [lo, hi] = std::minmax_element(kl.begin(), kl.end());
  return *lo > 0 ? *hi / *lo : std::numeric_limits<double>::infinity();
}

Json evaluate_setting(Composer& composer, dist::Comm& comm, const std::vector<double>& lambda,
                      const std::string& sampler, const EvalInputs& in, torch::Tensor* samples) {
  const uint64_t seed = derive_seed(in.seed, "compose/eval/" + sampler);
  torch::Tensor local;
  if (sampler == "langevin") {
    local = composer.sample_langevin(in.n, seed, lambda);
  } else {
    DUALIGN_CHECK(sampler == "ddim" || sampler == "student", "evaluation sampler: ddim | langevin | student, got '{}'",
                  sampler);
    local = composer.sample(in.n, seed, lambda);
  }
  // KL̂ with the surrogate score Σ λ_i s_i (or the student's in primal mode).
  auto kl = gather_rows(comm, composer.estimate_kl(local, in.n, derive_seed(seed, "kl"), lambda, sampler == "student").contiguous(), in.n);
  auto x = gather_rows(comm, local.to(torch::kCPU).to(torch::kFloat32).contiguous(), in.n);
  if (samples) *samples = x;

  Json out;
  out["lambda"] = lambda;
  out["sampler"] = sampler;
  out["n"] = in.n;
  Json kl_hat = Json::array();
  for (int64_t i = 0; i < kl.size(1); ++i) kl_hat.push_back(mean_se_json(kl.select(1, i)));
  out["kl_estimate"] = kl_hat;
  out["kl_estimate_ratio"] = kl_ratio(means(kl_hat));

  if (in.rewards && !in.rewards->empty()) {
    Json r = Json::array();
    for (auto& reward : *in.rewards) {
      std::vector<torch::Tensor> parts;
      for (int64_t s = 0; s < x.size(0); s += 256) {
        const int64_t len = std::min<int64_t>(256, x.size(0) - s);
        parts.push_back(reward->score(x.narrow(0, s, len).to(composer.device()), {}).to(torch::kCPU).to(torch::kFloat64));
      }
      r.push_back(mean_se_json(torch::cat(parts)));
    }
    auto rm = means(r);
    out["reward"] = r;
    out["reward_min"] = *std::min_element(rm.begin(), rm.end());
  }
  if (!in.gmms.empty()) {
    // Exact per-model log-likelihood of the samples, the samples' own KL (k-NN entropy) and the exact product's.
    const double h = knn_entropy(x);
    Json ll = Json::array(), sample_kl = Json::array();
    std::vector<double> skl;
    for (const auto& g : in.gmms) {
      auto lq = g.log_prob(x);
      ll.push_back(mean_se_json(lq));
      skl.push_back(-h - lq.mean().item<double>());
      sample_kl.push_back(skl.back());
    }
    auto lm = means(ll);
    out["loglik"] = ll;
    out["loglik_min"] = *std::min_element(lm.begin(), lm.end());
    out["entropy_knn"] = h;
    out["kl_samples"] = sample_kl;
    out["kl_samples_ratio"] = kl_ratio(skl);
    if (in.grid) {
      auto exact = in.grid->kl(lambda);
      out["kl_exact_product"] = exact;
      out["kl_exact_product_ratio"] = kl_ratio(exact);
      out["loglik_exact_product"] = in.grid->expected_log_q(lambda);
    }
  }
  return out;
}

}  // namespace dualign::compose
