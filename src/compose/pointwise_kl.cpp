#include "compose/pointwise_kl.h"

#include <cmath>

#include "util/error.h"

namespace dualign::compose {

torch::Tensor lemma2_weights(const diffusion::NoiseSchedule& schedule) {
  auto betas = schedule.betas().to(torch::kFloat64);
  auto one_minus_ab = 1.0 - schedule.alphas_cumprod().to(torch::kFloat64);
  return -0.5 * torch::log1p(-betas) / one_minus_ab;
}

KlDraws KlDraws::rows(int64_t start, int64_t length) const {
  return {t.narrow(0, start, length), noise.narrow(0, start, length), stratum_mass};
}

KlDraws draw_kl(const diffusion::NoiseSchedule& schedule, int64_t n, int64_t strata,
                const std::vector<int64_t>& sample_shape, uint64_t seed) {
  DUALIGN_CHECK(strata >= 1 && strata <= schedule.num_train_timesteps(),
                "KL strata must be in [1, {}] (the number of timesteps), got {}", schedule.num_train_timesteps(), strata);
  auto w = lemma2_weights(schedule);
  auto cum = torch::cumsum(w, 0);
  const double total = cum[-1].item<double>();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // Stratum k covers cumulative mass [k, k+1)·W/K; u within it picks t with probability ∝ ω_t.
  auto u = at::rand({n, strata}, gen, torch::kFloat64);
  auto target = (torch::arange(strata, torch::kFloat64).unsqueeze(0) + u) * (total / double(strata));
  auto t = torch::searchsorted(cum, target).clamp_max(schedule.num_train_timesteps() - 1);
  std::vector<int64_t> shape{n, strata};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  auto noise = at::normal(0.0, 1.0, shape, gen);
  return {t, noise, total / double(strata)};
}

torch::Tensor pointwise_kl(const std::vector<Component>& components, const std::vector<double>& lambda,
                           const std::optional<EpsFn>& p_eps, const diffusion::NoiseSchedule& schedule,
                           const torch::Tensor& x0, const KlDraws& draws, int64_t batch) {
  torch::NoGradGuard no_grad;
  const int64_t n = x0.size(0), strata = draws.t.size(1), m = static_cast<int64_t>(components.size());
  DUALIGN_CHECK(draws.t.size(0) == n, "KL draws for {} samples, got {} samples", draws.t.size(0), n);
  DUALIGN_CHECK(p_eps || static_cast<int64_t>(lambda.size()) == m, "{} weights for {} components", lambda.size(), m);
  const auto device = x0.device();
  auto out = torch::zeros({n, m}, torch::kFloat64);
  const int64_t rows_per_call = std::max<int64_t>(1, batch / strata);
  for (int64_t start = 0; start < n; start += rows_per_call) {
    const int64_t len = std::min(rows_per_call, n - start);
    // Flatten (sample, stratum) into one batch of len·K noised points.
    auto x = x0.narrow(0, start, len).unsqueeze(1).expand_as(draws.noise.narrow(0, start, len).to(device));
    auto t = draws.t.narrow(0, start, len).reshape({-1}).to(device);
    auto eps = draws.noise.narrow(0, start, len).to(device).flatten(0, 1);
    auto x_t = schedule.add_noise(x.flatten(0, 1), eps, t);
    std::vector<torch::Tensor> preds;
    for (const auto& c : components) preds.push_back(c.eps(x_t, t).to(torch::kFloat64));
    auto ep = p_eps ? (*p_eps)(x_t, t).to(torch::kFloat64) : weighted_sum(preds, lambda);
    for (int64_t i = 0; i < m; ++i) {
      auto sq = (ep - preds[size_t(i)]).pow(2).flatten(1).sum(1).view({len, strata});
      out.narrow(0, start, len).select(1, i).copy_((sq.sum(1) * draws.stratum_mass).cpu());
    }
  }
  return out;
}

}  // namespace dualign::compose
