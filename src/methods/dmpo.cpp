// DMPO as defined in docs/methods.md: the reverse KL between the model's implicit pair distribution and a target,
//   p_θ = softmax(ρ_w, ρ_l)  (ρ: implicit log-ratios of preference.h, shared t and ε per pair)
//   loss = KL(p_θ ‖ q) = Σ_i p_θ(i) (log p_θ(i) − log q(i))
// with q from the human label, q = softmax(0, log α) (α small: EXO's log α = −10), or from reward scores of
// the dataset, q = softmax(score_w / β_r, score_l / β_r). Mode-seeking where Diffusion-DPO's
// KL(q ‖ p_θ) is mean-seeking; same compute (2 policy forward + backward, 2 reference forward per pair).
#include "config/config.h"
#include "methods/preference.h"
#include "util/error.h"

namespace dualign::methods {
namespace {

class Dmpo : public Method {
 public:
  Dmpo(const config::Section& cfg, const MethodContext& ctx)
      : schedule_(ctx.schedule),
        device_(ctx.device),
        beta_(cfg.get<double>("beta")),
        target_(cfg.get<std::string>("target", "label")),
        label_log_alpha_(cfg.get<double>("label_log_alpha", -10.0)),
        reward_temperature_(cfg.get<double>("reward_temperature", 1.0)) {
    DUALIGN_CHECK(target_ == "label" || target_ == "reward", "config key '{}': expected label or reward, got '{}'",
                  cfg.path("target"), target_);
    DUALIGN_CHECK(label_log_alpha_ < 0, "config key '{}': log α must be negative (α < 1), got {}",
                  cfg.path("label_log_alpha"), label_log_alpha_);
    DUALIGN_CHECK(reward_temperature_ > 0, "config key '{}' must be positive", cfg.path("reward_temperature"));
    reference_ = frozen_reference(ctx, cfg.get<std::string>("reference_dtype", "float32"), cfg.path("reference_dtype"));
  }
  std::string name() const override { return "dmpo"; }

  LossOutput loss(models::ScoreModel& policy, const data::Batch& batch) override {
    PairMse m = pair_mse(policy, *reference_, schedule_, batch, device_);
    auto rho = torch::stack({-beta_ * (m.policy_w - m.ref_w), -beta_ * (m.policy_l - m.ref_l)}, 1);  // [B, 2]
    auto log_p = torch::log_softmax(rho, 1);
    auto log_q = torch::log_softmax(target_logits(batch), 1);
    auto kl = (log_p.exp() * (log_p - log_q)).sum(1);
    LossOutput out{kl.mean(), {}};
    add_pair_stats(out, m, rho.select(1, 0) - rho.select(1, 1));
    out.add_sum("target_p_w_sum", log_q.select(1, 0).exp());
    return out;
  }

 private:
  torch::Tensor target_logits(const data::Batch& batch) const {
    const int64_t n = batch.local_size();
    if (target_ == "label") {
      auto logits = torch::zeros({n, 2}, torch::TensorOptions().device(device_));
      logits.select(1, 1).fill_(label_log_alpha_);
      return logits;
    }
    DUALIGN_CHECK(batch.score_w.defined() && batch.score_l.defined(),
                  "method.target = reward needs score_w and score_l in the preference_pairs dataset");
    return torch::stack({batch.score_w, batch.score_l}, 1) / reward_temperature_;
  }

  const diffusion::NoiseSchedule& schedule_;
  torch::Device device_;
  double beta_;
  std::string target_;
  double label_log_alpha_, reward_temperature_;
  std::shared_ptr<models::ScoreModel> reference_;
};

}  // namespace

std::unique_ptr<Method> make_dmpo(const config::Section& cfg, const MethodContext& ctx) {
  return std::make_unique<Dmpo>(cfg, ctx);
}

}  // namespace dualign::methods
