#include "methods/preference.h"

#include "config/config.h"
#include "util/error.h"

namespace dualign::methods {
namespace {

torch::Tensor per_image_mse(const torch::Tensor& out, const torch::Tensor& target) {
  return (out.to(torch::kFloat32) - target).pow(2).flatten(1).mean(1);
}

}  // namespace

std::shared_ptr<models::ScoreModel> frozen_reference(const MethodContext& ctx, const std::string& dtype_name,
                                             const std::string& key) {
  torch::ScalarType dtype = torch::kFloat32;
  if (dtype_name == "bfloat16") {
    dtype = torch::kBFloat16;
  } else if (dtype_name != "float32") {
    fail("config key '{}': expected float32 or bfloat16, got '{}'", key, dtype_name);
  }
  if (auto base = ctx.policy ? ctx.policy->base_view() : nullptr) {
    // LoRA: the policy's own frozen weights with the adapters bypassed; one copy of the weights, in their dtype.
    DUALIGN_CHECK(dtype == torch::kFloat32, "config key '{}': with model.lora the reference is the policy's frozen "
                                            "base (LoRA disabled), which has no copy to store in bfloat16; use float32",
                  key);
    return base;
  }
  DUALIGN_CHECK(ctx.build_reference, "this method needs a reference model but none can be built here");
  auto ref = ctx.build_reference();
  ref->freeze(dtype);
  return ref;
}

PairMse pair_mse(models::ScoreModel& policy, models::ScoreModel& reference, const diffusion::NoiseSchedule& schedule,
                 const data::Batch& batch, const torch::Device& device) {
  DUALIGN_CHECK(batch.x_l.defined(), "a pair method needs preference pairs (data format preference_pairs)");
  const int64_t n = batch.local_size();
  auto eps = data::draw_global_normal(batch, "pair/eps", batch.x.sizes().slice(1), device);
  auto t = data::draw_global_int(batch, "pair/t", schedule.num_train_timesteps(), device);
  auto x0 = torch::cat({batch.x, batch.x_l}, 0);
  auto eps2 = torch::cat({eps, eps}, 0), t2 = torch::cat({t, t}, 0);
  auto x_t = schedule.add_noise(x0, eps2, t2);
  auto target = schedule.target(x0, eps2, t2);
  auto cond = batch.cond.repeat(2);

  auto policy_mse = per_image_mse(policy.forward(x_t, t2, cond), target);
  torch::Tensor ref_mse;
  {
    torch::NoGradGuard no_grad;
    ref_mse = per_image_mse(reference.forward(x_t, t2, cond), target);
  }
  return {policy_mse.narrow(0, 0, n), policy_mse.narrow(0, n, n), ref_mse.narrow(0, 0, n), ref_mse.narrow(0, n, n)};
}

SampleMse sample_mse(models::ScoreModel& policy, models::ScoreModel& reference, const diffusion::NoiseSchedule& schedule,
                     const data::Batch& batch, const torch::Device& device) {
  auto eps = data::draw_global_normal(batch, "sample/eps", batch.x.sizes().slice(1), device);
  auto t = data::draw_global_int(batch, "sample/t", schedule.num_train_timesteps(), device);
  auto x_t = schedule.add_noise(batch.x, eps, t);
  auto target = schedule.target(batch.x, eps, t);
  auto policy_mse = per_image_mse(policy.forward(x_t, t, batch.cond), target);
  torch::NoGradGuard no_grad;
  return {policy_mse, per_image_mse(reference.forward(x_t, t, batch.cond), target)};
}

void add_pair_stats(LossOutput& out, const PairMse& m, const torch::Tensor& margin) {
  out.add_sum("implicit_acc_sum", margin.detach() > 0);
  out.add_sum("reward_margin_sum", margin);
  out.add_sum("model_mse_w_sum", m.policy_w);
  out.add_sum("model_mse_l_sum", m.policy_l);
  out.add_sum("ref_mse_w_sum", m.ref_w);
  out.add_sum("ref_mse_l_sum", m.ref_l);
  out.add_value("count", static_cast<double>(margin.size(0)), margin.device());
}

torch::Tensor implicit_margin(const PairMse& m, double beta) {
  auto rho_w = -beta * (m.policy_w - m.ref_w);  // per-image log-ratios first, then their difference: the order
  auto rho_l = -beta * (m.policy_l - m.ref_l);  // of operations DMPO uses too, so both round the same way
  return rho_w - rho_l;
}

namespace {

class MarginMethod : public Method {
 public:
  MarginMethod(std::string name, MarginLoss per_pair, const config::Section& cfg, const MethodContext& ctx)
      : name_(std::move(name)), per_pair_(per_pair), schedule_(ctx.schedule), device_(ctx.device),
        beta_(cfg.get<double>("beta")) {
    reference_ = frozen_reference(ctx, cfg.get<std::string>("reference_dtype", "float32"), cfg.path("reference_dtype"));
  }
  std::string name() const override { return name_; }

  LossOutput loss(models::ScoreModel& policy, const data::Batch& batch) override {
    PairMse m = pair_mse(policy, *reference_, schedule_, batch, device_);
    auto margin = implicit_margin(m, beta_);
    LossOutput out{per_pair_(margin).mean(), {}};
    add_pair_stats(out, m, margin);
    return out;
  }

 private:
  std::string name_;
  MarginLoss per_pair_;
  const diffusion::NoiseSchedule& schedule_;
  torch::Device device_;
  double beta_;
  std::shared_ptr<models::ScoreModel> reference_;
};

}  // namespace

std::unique_ptr<Method> make_margin_method(std::string name, MarginLoss per_pair, const config::Section& cfg,
                                           const MethodContext& ctx) {
  return std::make_unique<MarginMethod>(std::move(name), per_pair, cfg, ctx);
}

}  // namespace dualign::methods
