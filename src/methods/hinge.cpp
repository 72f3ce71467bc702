// Diffusion-DPO with the hinge loss (diffusers' train_diffusion_dpo.py, loss_type=hinge): per pair,
// loss = max(0, 1 − (ρ_w − ρ_l)) with ρ the implicit log-ratio of preference.h. Unlike the sigmoid loss it stops
// pushing a pair once its margin exceeds 1, so β sets the margin at which a pair counts as learned.
#include "config/config.h"
#include "methods/preference.h"

namespace dualign::methods {
namespace {

class Hinge : public Method {
 public:
  Hinge(const config::Section& cfg, const MethodContext& ctx)
      : schedule_(ctx.schedule), device_(ctx.device), beta_(cfg.get<double>("beta")) {
    reference_ = frozen_reference(ctx, cfg.get<std::string>("reference_dtype", "float32"), cfg.path("reference_dtype"));
  }
  std::string name() const override { return "hinge"; }

  LossOutput loss(models::ScoreModel& policy, const data::Batch& batch) override {
    PairMse m = pair_mse(policy, *reference_, schedule_, batch, device_);
    auto margin = -beta_ * ((m.policy_w - m.ref_w) - (m.policy_l - m.ref_l));
    LossOutput out{torch::relu(1.0 - margin).mean(), {}};
    add_pair_stats(out, m, margin);
    return out;
  }

 private:
  const diffusion::NoiseSchedule& schedule_;
  torch::Device device_;
  double beta_;
  std::shared_ptr<models::ScoreModel> reference_;
};

}  // namespace

std::unique_ptr<Method> make_hinge(const config::Section& cfg, const MethodContext& ctx) {
  return std::make_unique<Hinge>(cfg, ctx);
}

}  // namespace dualign::methods
