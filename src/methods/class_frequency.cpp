// Class shares of the policy's samples: see class_frequency.h.
#include "methods/class_frequency.h"

#include <fmt/ranges.h>

#include <cmath>
#include <numeric>

#include "config/config.h"
#include "util/error.h"
#include "util/seed.h"

namespace dualign::methods {

ClassFrequencySettings ClassFrequencySettings::read(const config::Section& cfg, int64_t m) {
  ClassFrequencySettings s;
  s.classifier = cfg.get<std::string>("classifier");
  s.target = cfg.get<std::vector<double>>("target", std::vector<double>(static_cast<size_t>(m), 1.0));
  if (static_cast<int64_t>(s.target.size()) != m)
    fail("config key '{}': {} shares for {} groups (method.groups)", cfg.path("target"), s.target.size(), m);
  for (double p : s.target)
    if (!(p >= 0) || !std::isfinite(p)) fail("config key '{}': shares must be finite and >= 0", cfg.path("target"));
  const double total = std::accumulate(s.target.begin(), s.target.end(), 0.0);
  if (!(total > 0)) fail("config key '{}': at least one share must be > 0", cfg.path("target"));
  for (double& p : s.target) p /= total;
  s.samples = cfg.get<int64_t>("samples", s.samples);
  s.steps = cfg.get<int64_t>("steps", s.steps);
  s.logit_adjust = cfg.get<bool>("logit_adjust", s.logit_adjust);
  if (s.samples < 1) fail("config key '{}': must be >= 1, got {}", cfg.path("samples"), s.samples);
  if (s.steps < 1) fail("config key '{}': must be >= 1, got {}", cfg.path("steps"), s.steps);
  return s;
}

namespace {
diffusion::SamplerConfig ddim(int64_t steps) {
  diffusion::SamplerConfig c;
  c.kind = "ddim";
  c.num_inference_steps = steps;
  c.eta = 0.0;
  return c;
}
}  // namespace

ClassFrequencyProbe::ClassFrequencyProbe(ClassFrequencySettings settings, const diffusion::NoiseSchedule& schedule,
                                         torch::Device device, const std::vector<double>& training_share,
                                         const std::string& key)
    : s_(std::move(settings)), sampler_(schedule, ddim(s_.steps)), device_(device), key_(key) {
  classifier_ = rewards::load_classifier(s_.classifier, device).model;
  const auto m = static_cast<int64_t>(s_.target.size());
  if (classifier_->config().num_classes != m)
    fail("config key '{}.classifier': '{}' has {} classes, but the mixture has {} groups (one class per group)", key_,
         s_.classifier, classifier_->config().num_classes, m);
  log_prior_ = torch::zeros({m}, torch::kFloat32);
  if (s_.logit_adjust) {
    if (static_cast<int64_t>(training_share.size()) != m)
      fail("config key '{}.logit_adjust' needs method.group_frequency (the training shares the classifier saw)", key_);
    log_prior_ = torch::tensor(training_share, torch::kFloat64).log().to(torch::kFloat32);
  }
  log_prior_ = log_prior_.to(device);
}

torch::Tensor ClassFrequencyProbe::count(models::ScoreModel& policy, const data::Batch& batch, int rank, int world) {
  torch::NoGradGuard no_grad;
  const auto shape = batch.x.sizes().slice(1);
  const auto& c = classifier_->config();
  if (shape.size() != 3 || shape[0] != c.in_channels || shape[1] != c.image_size || shape[2] != c.image_size)
    fail("config key '{}.classifier': '{}' takes [{}, {}, {}] images, the training data has {}", key_, s_.classifier,
         c.in_channels, c.image_size, c.image_size, shape.vec());
  // The global draws, then this rank's contiguous slice.
  std::vector<int64_t> global_shape{s_.samples};
  global_shape.insert(global_shape.end(), shape.begin(), shape.end());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(batch.seed, "mixture/class_frequency"));
  auto x_T = at::normal(0.0, 1.0, global_shape, gen);
  const int64_t begin = s_.samples * rank / world, end = s_.samples * (rank + 1) / world;
  const auto m = static_cast<int64_t>(s_.target.size());
  if (end == begin) return torch::zeros({m}, torch::kFloat64);
  x_T = x_T.narrow(0, begin, end - begin).to(device_);
  auto model = [&](const torch::Tensor& x, const torch::Tensor& t) { return policy.forward(x, t, data::Condition{}); };
  auto x0 = sampler_.sample(model, x_T).clamp(-1, 1);
  auto label = (classifier_->forward(x0.to(torch::kFloat32)) - log_prior_).argmax(1);
  return torch::bincount(label.to(torch::kCPU), {}, m).to(torch::kFloat64);
}

}  // namespace dualign::methods
