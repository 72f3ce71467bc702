#include "compose/product_sampling.h"

#include <cmath>

#include "util/error.h"
#include "util/seed.h"

namespace dualign::compose {

Rows Rows::share(int64_t n, int rank, int world_size) {
  const int64_t start = n * rank / world_size, end = n * (rank + 1) / world_size;
  return {start, end - start};
}

torch::Tensor initial_noise(int64_t n, const std::vector<int64_t>& sample_shape, uint64_t seed, Rows rows) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<int64_t> shape{n};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  return at::normal(0.0, 1.0, shape, gen).narrow(0, rows.start, rows.length);
}

torch::Tensor sample_eps(const EpsFn& eps, const diffusion::NoiseSchedule& schedule,
                         const diffusion::SamplerConfig& sampler, const torch::Tensor& x_T, int64_t batch) {
  torch::NoGradGuard no_grad;
  const auto eps_schedule = epsilon_schedule(schedule);
  diffusion::DiscreteSampler s(eps_schedule, sampler);
  DUALIGN_CHECK(!s.step_needs_noise(0), "the composed sampler is deterministic DDIM (eta 0); got kind {} eta {}",
                sampler.kind, sampler.eta);
  std::vector<torch::Tensor> chunks;
  for (int64_t start = 0; start < x_T.size(0); start += batch) {
    const int64_t len = std::min(batch, x_T.size(0) - start);
    chunks.push_back(s.sample(eps, x_T.narrow(0, start, len)));
  }
  return chunks.empty() ? x_T.clone() : torch::cat(chunks, 0);
}

torch::Tensor annealed_langevin(const EpsFn& eps, const diffusion::NoiseSchedule& schedule, const LangevinConfig& cfg,
                                int64_t n, const std::vector<int64_t>& sample_shape, uint64_t seed, Rows rows,
                                const torch::Device& device) {
  torch::NoGradGuard no_grad;
  DUALIGN_CHECK(cfg.levels >= 1 && cfg.corrector_steps >= 0 && cfg.step_scale > 0 && cfg.data_scale > 0,
                "annealed Langevin: levels >= 1, corrector steps >= 0, step and data scales > 0 (got {}, {}, {}, {})",
                cfg.levels, cfg.corrector_steps, cfg.step_scale, cfg.data_scale);
  const auto eps_schedule = epsilon_schedule(schedule);
  diffusion::SamplerConfig ddim;
  ddim.num_inference_steps = cfg.levels;
  diffusion::DiscreteSampler predictor(eps_schedule, ddim);
  auto x = initial_noise(n, sample_shape, derive_seed(seed, "langevin/x_T"), rows).to(device);
  std::vector<int64_t> shape{n};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  const auto& ts = predictor.timesteps();
  for (size_t i = 0; i < ts.size(); ++i) {
    auto t = torch::full({rows.length}, ts[i], torch::TensorOptions().dtype(torch::kInt64).device(device));
    const double ab = eps_schedule.alpha_bar(ts[i]), sigma = std::sqrt(1 - ab);
    const double h = cfg.step_scale * (ab * cfg.data_scale * cfg.data_scale + sigma * sigma);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(seed, "langevin/z", {int64_t(i)}));
    for (int64_t k = 0; k < cfg.corrector_steps; ++k) {
      auto z = at::normal(0.0, 1.0, shape, gen).narrow(0, rows.start, rows.length).to(device);
      x = x - (h / sigma) * eps(x, t) + std::sqrt(2 * h) * z;
    }
    x = predictor.step(i, x, eps(x, t), {}, {});
  }
  return x;
}

}  // namespace dualign::compose
