// Diffusion-DPO (Wallace et al. 2024): per pair, loss = −log σ(ρ_w − ρ_l) with ρ the implicit log-ratio of
// preference.h. This is KL(q ‖ p_θ) for the hard target q = (1, 0) on the model's implicit pair distribution
// p_θ = softmax(ρ_w, ρ_l): mean-seeking. β convention: see preference.h (official β_dpo = 2β).
#include "config/config.h"
#include "methods/preference.h"

namespace dualign::methods {
namespace {

class Dpo : public Method {
 public:
  Dpo(const config::Section& cfg, const MethodContext& ctx)
      : schedule_(ctx.schedule), device_(ctx.device), beta_(cfg.get<double>("beta")) {
    reference_ = frozen_reference(ctx, cfg.get<std::string>("reference_dtype", "float32"), cfg.path("reference_dtype"));
  }
  std::string name() const override { return "dpo"; }

  LossOutput loss(models::ScoreModel& policy, const data::Batch& batch) override {
    PairMse m = pair_mse(policy, *reference_, schedule_, batch, device_);
    auto rho_w = -beta_ * (m.policy_w - m.ref_w);
    auto rho_l = -beta_ * (m.policy_l - m.ref_l);
    auto margin = rho_w - rho_l;
    LossOutput out{torch::softplus(-margin).mean(), {}};  // −log σ(margin), stable for large |margin|
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

std::unique_ptr<Method> make_dpo(const config::Section& cfg, const MethodContext& ctx) {
  return std::make_unique<Dpo>(cfg, ctx);
}

}  // namespace dualign::methods
