#include "eval/sampling.h"

#include <yaml-cpp/yaml.h>

#include "ckpt/checkpoint.h"
#include "config/config.h"
#include "util/error.h"

namespace dualign::eval {

diffusion::ScheduleConfig read_schedule(const config::Section& d) {
  diffusion::ScheduleConfig c;
  c.kind = d.get<std::string>("schedule");
  c.num_train_timesteps = d.get<int64_t>("num_train_timesteps");
  c.beta_start = d.get<double>("beta_start");
  c.beta_end = d.get<double>("beta_end");
  c.prediction = d.get<std::string>("prediction");
  d.finish();
  return c;
}

TrainedModel load_trained_model(const std::string& checkpoint, const torch::Device& device, bool prefer_ema) {
  TrainedModel out;
  out.model = methods::load_score_model(checkpoint, device, prefer_ema);
  out.checkpoint = methods::resolve_checkpoint(checkpoint);
  ckpt::CheckpointReader reader(out.checkpoint);
  config::Composed composed;
  composed.config = composed.resolved = YAML::Load(reader.text("config_yaml"));
  config::Config cfg(std::move(composed));
  out.schedule = std::make_unique<diffusion::NoiseSchedule>(read_schedule(cfg.section("diffusion")));
  return out;
}

torch::Tensor sample(methods::ScoreModel& model, const diffusion::NoiseSchedule& schedule, const SampleSpec& spec,
                     int64_t n, uint64_t seed, const methods::Condition& cond) {
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
