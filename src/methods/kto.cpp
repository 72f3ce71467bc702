// Diffusion-KTO (Li et al. 2024) on unpaired samples with desirable (1) / undesirable (0) labels:
//   g = −(m_θ − m_ref)                  implicit reward of each sample (independent t, ε per sample)
//   z = max(0, mean g over the GLOBAL micro-batch), detached   the KL reference point (all-reduced over ranks,
//                                                             as the reference code does)
//   loss = mean λ_y (1 − σ(s_y β (g − z))),  s = +1 desirable, −1 undesirable
// (U = σ, the Kahneman–Tversky utility the paper found best.) β plays the role of the paper's β·T·ω.
#include "config/config.h"
#include "dist/comm.h"
#include "methods/preference.h"
#include "util/error.h"

namespace dualign::methods {
namespace {

class Kto : public Method {
 public:
  Kto(const config::Section& cfg, const MethodContext& ctx)
      : schedule_(ctx.schedule),
        device_(ctx.device),
        comm_(ctx.comm),
        beta_(cfg.get<double>("beta")),
        desirable_weight_(cfg.get<double>("desirable_weight", 1.0)),
        undesirable_weight_(cfg.get<double>("undesirable_weight", 1.0)) {
    reference_ = frozen_reference(ctx, cfg.get<std::string>("reference_dtype", "float32"), cfg.path("reference_dtype"));
  }
  std::string name() const override { return "kto"; }

  LossOutput loss(models::ScoreModel& policy, const data::Batch& batch) override {
    DUALIGN_CHECK(batch.desirable.defined(), "method kto needs labelled samples (data format labelled_samples)");
    SampleMse m = sample_mse(policy, *reference_, schedule_, batch, device_);
    auto g = -(m.policy - m.ref);
    const auto z = reference_point(g);  // float64, on the device
    auto sign = batch.desirable * 2 - 1;
    auto weight = batch.desirable * desirable_weight_ + (1 - batch.desirable) * undesirable_weight_;
    auto utility = torch::sigmoid(sign * beta_ * (g - z.to(g.scalar_type())));
    LossOutput out{(weight * (1 - utility)).mean(), {}};
    out.add_sum("kl_ref_point_sum", z * static_cast<double>(batch.local_size()));
    out.add_sum("implicit_acc_sum", (sign * g) > 0);
    out.add_sum("desirable_sum", batch.desirable);
    out.add_sum("model_mse_sum", m.policy);
    out.add_sum("ref_mse_sum", m.ref);
    out.add_value("count", static_cast<double>(batch.local_size()), device_);
    return out;
  }

 private:
  // Mean implicit reward over the global micro-batch, clamped at 0: identical on every rank. One all-reduce of
  // [sum, count] on the device: no host read inside the micro-step.
  torch::Tensor reference_point(const torch::Tensor& g) {
    auto sums = torch::stack({g.detach().sum().to(torch::kFloat64),
                              torch::full({}, static_cast<double>(g.size(0)), g.options().dtype(torch::kFloat64))});
    if (comm_) comm_->all_reduce(sums);
    return (sums[0] / sums[1]).clamp_min(0.0);
  }

  const diffusion::NoiseSchedule& schedule_;
  torch::Device device_;
  dist::Comm* comm_;
  double beta_, desirable_weight_, undesirable_weight_;
  std::shared_ptr<models::ScoreModel> reference_;
};

}  // namespace

std::unique_ptr<Method> make_kto(const config::Section& cfg, const MethodContext& ctx) {
  return std::make_unique<Kto>(cfg, ctx);
}

}  // namespace dualign::methods
