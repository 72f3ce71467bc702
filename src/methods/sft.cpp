// SFT / pretraining by denoising score matching: t ~ U{0..T-1}, ε ~ N(0, I),
// loss = || target(x0, ε, t) - model(x_t, t, c) ||²  (target = ε or v per the schedule's prediction type).
#include "config/config.h"
#include "methods/method.h"

namespace dualign::methods {
namespace {

class Sft : public Method {
 public:
  explicit Sft(const MethodContext& ctx) : schedule_(ctx.schedule), device_(ctx.device) {}
  std::string name() const override { return "sft"; }

  LossOutput loss(models::ScoreModel& policy, const data::Batch& batch) override {
    auto x0 = batch.x;
    auto sample_shape = x0.sizes().slice(1);
    auto eps = data::draw_global_normal(batch, "sft/eps", sample_shape, device_);
    auto t = data::draw_global_int(batch, "sft/t", schedule_.num_train_timesteps(), device_);
    auto x_t = schedule_.add_noise(x0, eps, t);
    auto out = policy.forward(x_t, t, batch.cond);
    auto per_sample = (out - schedule_.target(x0, eps, t)).pow(2).flatten(1).mean(1);
    LossOutput result{per_sample.mean(), {}};
    result.add_sum("mse_sum", per_sample);
    result.add_value("count", static_cast<double>(batch.local_size()), device_);
    return result;
  }

 private:
  const diffusion::NoiseSchedule& schedule_;
  torch::Device device_;
};

}  // namespace

std::unique_ptr<Method> make_sft(const config::Section&, const MethodContext& ctx) {
  return std::make_unique<Sft>(ctx);
}

}  // namespace dualign::methods
