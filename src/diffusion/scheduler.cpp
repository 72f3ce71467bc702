#include "diffusion/scheduler.h"

#include <torch/torch.h>

#include "diffusion/scheduler_kinds.h"
#include "util/error.h"

namespace dualign::diffusion {

at::Tensor Scheduler::timestep_tensor(size_t i, int64_t batch, const at::Device& device) const {
  const double t = model_timestep(i);
  if (integer_timesteps()) return torch::full({batch}, int64_t(t), torch::TensorOptions(torch::kInt64).device(device));
  return torch::full({batch}, float(t), torch::TensorOptions(torch::kFloat32).device(device));
}

namespace {

// DDIM and DDPM through DiscreteSampler (which methods also call step by step).
class DiscreteScheduler : public Scheduler {
 public:
  DiscreteScheduler(const NoiseSchedule& schedule, const SamplerConfig& config) : sampler_(schedule, config) {}
  size_t num_steps() const override { return sampler_.timesteps().size(); }
  double model_timestep(size_t i) const override { return double(sampler_.timesteps()[i]); }
  bool needs_noise(size_t i) const override { return sampler_.step_needs_noise(i); }
  at::Tensor step(size_t i, const at::Tensor& out, const at::Tensor& x, const at::Tensor& noise) override {
    return sampler_.step(i, x, out, {}, noise);
  }

 private:
  DiscreteSampler sampler_;
};

}  // namespace

std::unique_ptr<Scheduler> make_discrete_scheduler(const NoiseSchedule& schedule, const SamplerConfig& config) {
  return std::make_unique<DiscreteScheduler>(schedule, config);
}

std::unique_ptr<Scheduler> make_scheduler(const NoiseSchedule& schedule, const SamplerConfig& config) {
  DUALIGN_CHECK(config.num_inference_steps >= 1 && config.num_inference_steps <= schedule.num_train_timesteps(),
                "sampler.num_inference_steps must be in [1, {}] (num_train_timesteps), got {}",
                schedule.num_train_timesteps(), config.num_inference_steps);
  const auto& k = config.kind;
  if (k == "ddim" || k == "ddpm") return make_discrete_scheduler(schedule, config);
  if (k == "pndm") return make_pndm_scheduler(schedule, config);
  if (k == "euler" || k == "euler_ancestral") return make_euler_scheduler(schedule, config);
  if (k == "dpmsolver++") return make_dpm_solver_scheduler(schedule, config);
  fail("sampler kind '{}': expected ddim | ddpm | pndm | euler | euler_ancestral | dpmsolver++", k);
}

at::Tensor sample_with_scheduler(Scheduler& scheduler, const ScoreFn& model, const at::Tensor& x_T,
                                 const NoiseFn& noise) {
  torch::NoGradGuard no_grad;
  at::Tensor x = x_T * scheduler.init_noise_sigma();
  for (size_t i = 0; i < scheduler.num_steps(); ++i) {
    auto out = model(scheduler.scale_model_input(x, i), scheduler.timestep_tensor(i, x.size(0), x.device()));
    at::Tensor z;
    if (scheduler.needs_noise(i)) {
      DUALIGN_CHECK(bool(noise), "scheduler step {} is stochastic but no noise source was given", i);
      z = noise(x);
    }
    x = scheduler.step(i, out, x, z);
  }
  return x;
}

NoiseFn per_row_noise(std::vector<at::Generator> generators) {
  return [gens = std::move(generators)](const at::Tensor& like) {
    DUALIGN_CHECK(int64_t(gens.size()) == like.size(0), "per-row noise: {} generators for a batch of {} rows",
                  gens.size(), like.size(0));
    auto shape = like.sizes().vec();
    shape[0] = 1;
    std::vector<at::Tensor> rows;
    rows.reserve(gens.size());
    for (auto gen : gens) rows.push_back(at::normal(0.0, 1.0, shape, gen, torch::TensorOptions(torch::kFloat32)));
    return torch::cat(rows).to(like.device(), like.scalar_type());
  };
}

}  // namespace dualign::diffusion
