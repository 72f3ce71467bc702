#include "eval/sampling.h"

#include <yaml-cpp/yaml.h>

#include "ckpt/checkpoint.h"
#include "config/config.h"
#include "diffusion/schedule_config.h"
#include "util/error.h"

namespace dualign::eval {

TrainedModel load_trained_model(const std::string& checkpoint, const torch::Device& device, bool prefer_ema) {
  TrainedModel out;
  out.model = models::load_score_model(checkpoint, device, prefer_ema);
  out.checkpoint = models::resolve_checkpoint(checkpoint);
  ckpt::CheckpointReader reader(out.checkpoint);
  config::Composed composed;
  composed.config = composed.resolved = YAML::Load(reader.text("config_yaml"));
  config::Config cfg(std::move(composed));
  out.schedule = std::make_unique<diffusion::NoiseSchedule>(diffusion::read_schedule(cfg.section("diffusion")));
  return out;
}

torch::Tensor sample(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule, const SampleSpec& spec,
                     int64_t n, uint64_t seed, const data::Condition& cond) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.module().is_training();
  model.module().eval();
  diffusion::DiscreteSampler sampler(schedule, spec.sampler);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<int64_t> shape{n};
  for (auto d : model.sample_shape()) shape.push_back(d);
  const auto device = model.parameters().front().device();
  auto x_T = at::normal(0.0, 1.0, shape, gen);  // all of x_T first: independent of the batch size
  std::vector<torch::Tensor> chunks;
  for (int64_t start = 0; start < n; start += spec.batch_size) {
    const int64_t len = std::min(spec.batch_size, n - start);
    const auto c = cond.slice(start, len).to(device);
    diffusion::SampleOptions opts;
    opts.generator = gen;
    opts.guidance = spec.guidance;
    auto score = [&](const torch::Tensor& x, const torch::Tensor& t) {
      return model.forward(x, t.to(torch::kInt64), c);
    };
    chunks.push_back(sampler.sample(score, x_T.narrow(0, start, len).to(device), opts).cpu().to(torch::kFloat32));
  }
  model.module().train(was_training);
  return torch::cat(chunks, 0);
}

}  // namespace dualign::eval
