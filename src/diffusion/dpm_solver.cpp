// DPMSolverMultistepScheduler with algorithm_type dpmsolver++ (Lu et al. 2022): multistep solver of the
// probability-flow ODE in log-SNR λ on the data prediction x0. solver_order 2 is "DPM-Solver++(2M)", the usual
// choice for guided sampling. Timesteps and σ follow diffusers' set_timesteps (optionally Karras σ), the
// coefficients are float32 like diffusers' 0-d tensors.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "diffusion/scheduler_kinds.h"
#include "diffusion/sigmas.h"
#include "util/error.h"

namespace dualign::diffusion {
namespace {

struct AlphaSigma {
  float alpha, sigma, lambda;
};

// x_σ = x0 + σ ε in the VP parametrisation: α = 1 / sqrt(σ² + 1), σ_t = σ α, λ = log α - log σ_t.
AlphaSigma alpha_sigma(float sigma) {
  const float alpha = 1 / std::sqrt(sigma * sigma + 1);
  const float s = sigma * alpha;
  return {alpha, s, torch_log(alpha) - torch_log(s)};
}

class DpmSolverScheduler : public Scheduler {
 public:
  DpmSolverScheduler(const NoiseSchedule& schedule, const SamplerConfig& config)
      : predicts_v_(schedule.predicts_v()), order_(config.solver_order), heun_(config.solver_type == "heun"),
        lower_order_final_(config.lower_order_final), euler_at_final_(config.euler_at_final),
        zero_final_(config.final_sigmas_type == "zero") {
    DUALIGN_CHECK(order_ >= 1 && order_ <= 3, "sampler.solver_order: expected 1, 2 or 3, got {}", order_);
    DUALIGN_CHECK(config.solver_type == "midpoint" || config.solver_type == "heun",
                  "sampler.solver_type: expected midpoint | heun, got '{}'", config.solver_type);
    DUALIGN_CHECK(zero_final_ || config.final_sigmas_type == "sigma_min",
                  "sampler.final_sigmas_type: expected zero | sigma_min, got '{}'", config.final_sigmas_type);
    const int64_t n_train = schedule.num_train_timesteps(), n = config.num_inference_steps;
    const auto table = sigma_table(schedule);
    std::vector<double> sigmas;
    if (config.use_karras_sigmas) {
      // Karras σ between the table's ends (DPMSolverMultistepScheduler has no sigma_min / sigma_max settings),
      // timesteps rounded to the nearest integer (all schedules but squaredcos_cap_v2)
      sigmas = karras_sigmas(table.front(), table.back(), n);
      for (double s : sigmas) {
        double t = sigma_to_timestep(s, table);
        if (schedule.config().kind != "squaredcos_cap_v2") t = std::nearbyint(t);
        timesteps_.push_back(t);
      }
    } else {
      for (auto t : dpm_timesteps(n_train, n, config.timestep_spacing, config.steps_offset))
        timesteps_.push_back(double(t));
      sigmas = interp_sigmas(timesteps_, table);
    }
    for (double s : sigmas) sigmas_.push_back(float(s));
    sigmas_.push_back(zero_final_ ? 0.0f : table.front());
  }

  size_t num_steps() const override { return timesteps_.size(); }
  double model_timestep(size_t i) const override { return timesteps_[i]; }
  // Karras timesteps of squaredcos_cap_v2 stay fractional; diffusers still casts them to int64
  bool integer_timesteps() const override { return true; }

  at::Tensor step(size_t i, const at::Tensor& out, const at::Tensor& x, const at::Tensor&) override {
    DUALIGN_CHECK(i == next_, "dpmsolver++: steps must be taken in order (expected step {}, got {})", next_, i);
    ++next_;
    const size_t n = timesteps_.size();
    const bool lower_final =
        i == n - 1 && (euler_at_final_ || (lower_order_final_ && n < 15) || zero_final_);
    const bool lower_second = i + 2 == n && lower_order_final_ && n < 15;
    outputs_.push_back(data_prediction(out, x, sigmas_[i]));
    if (int64_t(outputs_.size()) > order_) outputs_.erase(outputs_.begin());
    at::Tensor prev;
    if (order_ == 1 || lower_order_nums_ < 1 || lower_final) {
      prev = first_order(i, x);
    } else if (order_ == 2 || lower_order_nums_ < 2 || lower_second) {
      prev = second_order(i, x);
    } else {
      prev = third_order(i, x);
    }
    if (lower_order_nums_ < order_) ++lower_order_nums_;
    return prev;
  }

 private:
  // diffusers' set_timesteps (λ is not clipped: lambda_min_clipped = -inf), descending integers
  static std::vector<int64_t> dpm_timesteps(int64_t n_train, int64_t n, const std::string& spacing,
                                            int64_t steps_offset) {
    std::vector<int64_t> ts;
    if (spacing == "linspace") {
      auto lin = numpy_linspace(0, double(n_train - 1), n + 1);  // [::-1][:-1]: drop 0
      for (int64_t i = n; i >= 1; --i) ts.push_back(int64_t(std::nearbyint(lin[size_t(i)])));
    } else if (spacing == "leading") {
      const int64_t ratio = n_train / (n + 1);
      for (int64_t i = n; i >= 1; --i) ts.push_back(i * ratio + steps_offset);
    } else if (spacing == "trailing") {
      ts = inference_timesteps(n_train, n, "trailing");
    } else {
      fail("sampler.timestep_spacing: expected leading | trailing | linspace, got '{}'", spacing);
    }
    return ts;
  }

  at::Tensor data_prediction(const at::Tensor& out, const at::Tensor& x, float sigma) const {
    const auto s = alpha_sigma(sigma);
    if (predicts_v_) return x * s.alpha - out * s.sigma;
    return (x - out * s.sigma) / s.alpha;
  }

  at::Tensor first_order(size_t i, const at::Tensor& x) const {
    const auto t = alpha_sigma(sigmas_[i + 1]), s = alpha_sigma(sigmas_[i]);
    const float h = t.lambda - s.lambda;
    return x * (t.sigma / s.sigma) - outputs_.back() * (t.alpha * (torch_exp(-h) - 1.0f));
  }

  at::Tensor second_order(size_t i, const at::Tensor& x) const {
    const auto t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]), s1 = alpha_sigma(sigmas_[i - 1]);
    const auto& m0 = outputs_[outputs_.size() - 1];
    const auto& m1 = outputs_[outputs_.size() - 2];
    const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda;
    const float r0 = h0 / h;
    const auto d0 = m0;
    const auto d1 = (m0 - m1) * (1.0f / r0);
    const float e = torch_exp(-h) - 1.0f;
    if (heun_) return x * (t.sigma / s0.sigma) - d0 * (t.alpha * e) + d1 * (t.alpha * (e / h + 1.0f));
    return x * (t.sigma / s0.sigma) - d0 * (t.alpha * e) - d1 * (0.5f * (t.alpha * e));
  }

  at::Tensor third_order(size_t i, const at::Tensor& x) const {
    const auto t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]), s1 = alpha_sigma(sigmas_[i - 1]),
               s2 = alpha_sigma(sigmas_[i - 2]);
    const auto& m0 = outputs_[2];
    const auto& m1 = outputs_[1];
    const auto& m2 = outputs_[0];
    const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda, h1 = s1.lambda - s2.lambda;
    const float r0 = h0 / h, r1 = h1 / h;
    const auto d1_0 = (m0 - m1) * (1.0f / r0), d1_1 = (m1 - m2) * (1.0f / r1);
    const auto d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1));
    const auto d2 = (d1_0 - d1_1) * (1.0f / (r0 + r1));
    const float e = torch_exp(-h) - 1.0f;
    return x * (t.sigma / s0.sigma) - m0 * (t.alpha * e) + d1 * (t.alpha * (e / h + 1.0f)) -
           d2 * (t.alpha * ((e + h) / (h * h) - 0.5f));
  }

  bool predicts_v_;
  int64_t order_;
  bool heun_, lower_order_final_, euler_at_final_, zero_final_;
  std::vector<double> timesteps_;
  std::vector<float> sigmas_;
  // multistep state
  size_t next_ = 0;
  int64_t lower_order_nums_ = 0;
  std::vector<at::Tensor> outputs_;  // data predictions of the last `order` steps, oldest first
};

}  // namespace

std::unique_ptr<Scheduler> make_dpm_solver_scheduler(const NoiseSchedule& schedule, const SamplerConfig& config) {
  return std::make_unique<DpmSolverScheduler>(schedule, config);
}

}  // namespace dualign::diffusion
