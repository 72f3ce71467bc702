#include "train/evaluate.h"

#include <torch/torch.h>

#include "config/config.h"
#include "dist/comm.h"
#include "eval/distances.h"
#include "data/gmm.h"
#include "eval/sampling.h"
#include "models/score_model.h"
#include "train/settings.h"
#include "util/seed.h"

namespace dualign::train {
namespace {

data::Gmm gmm_from(const config::Section& data) {
  return data::Gmm(data.get<std::vector<std::vector<double>>>("means"), data.get<std::vector<double>>("weights"),
                   data.get<double>("std"));
}

}  // namespace

std::map<std::string, double> evaluate(const config::Config& cfg, const TrainSettings& s, models::ScoreModel& model,
                                       const diffusion::NoiseSchedule& schedule, dist::Comm& comm) {
  std::map<std::string, double> out;
  auto data = cfg.section("data");
  if (data.get<std::string>("kind") != "gmm" || s.eval_num_samples <= 0 || comm.rank() != 0) return out;
  auto gmm = gmm_from(data);
  const int64_t n = s.eval_num_samples;
  eval::SampleSpec spec;
  spec.sampler.kind = s.eval_sampler;
  spec.sampler.num_inference_steps = s.eval_steps;
  spec.batch_size = n;
  auto generated = eval::sample(model, schedule, spec, n, derive_seed(s.seed, "eval/sample"));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(s.seed, "eval/exact"));
  auto exact_a = gmm.sample(n, gen), exact_b = gmm.sample(n, gen);
  out["eval/energy_distance"] = eval::energy_distance(generated, exact_a);
  out["eval/energy_distance_exact_floor"] = eval::energy_distance(exact_b, exact_a);
  out["eval/loglik_model_samples"] = gmm.log_prob(generated).mean().item<double>();
  out["eval/loglik_exact_samples"] = gmm.log_prob(exact_a).mean().item<double>();
  auto noise_only = at::normal(0.0, 1.0, {n, gmm.dim()}, gen);  // an untrained model's output law, for scale
  out["eval/energy_distance_standard_normal"] = eval::energy_distance(noise_only, exact_a);
  return out;
}

}  // namespace dualign::train
