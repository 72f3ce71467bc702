#include "diffusion/schedule.h"

#include <torch/torch.h>

#include <cmath>

#include "util/error.h"

namespace dualign::diffusion {
namespace {

// diffusers' betas_for_alpha_bar(alpha_transform_type="cosine", max_beta=0.999), in double then float32.
at::Tensor cosine_betas(int64_t n) {
  auto alpha_bar = [](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2), 2); };
  std::vector<float> betas(n);
  for (int64_t i = 0; i < n; ++i) {
    double t1 = double(i) / double(n), t2 = double(i + 1) / double(n);
    betas[i] = float(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
  }
  return torch::tensor(betas, torch::kFloat32);
}

}  // namespace

NoiseSchedule::NoiseSchedule(ScheduleConfig config) : config_(std::move(config)) {
  const int64_t n = config_.num_train_timesteps;
  DUALIGN_CHECK(n >= 2, "schedule.num_train_timesteps must be >= 2, got {}", n);
  if (config_.prediction == "epsilon") {
    predicts_v_ = false;
  } else if (config_.prediction == "v_prediction" || config_.prediction == "v") {
    predicts_v_ = true;
  } else {
    fail("schedule.prediction: expected 'epsilon' or 'v_prediction', got '{}'", config_.prediction);
  }
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  if (config_.kind == "linear") {
    betas_ = torch::linspace(config_.beta_start, config_.beta_end, n, f32);
  } else if (config_.kind == "scaled_linear") {
    betas_ = torch::linspace(std::sqrt(config_.beta_start), std::sqrt(config_.beta_end), n, f32).pow(2);
  } else if (config_.kind == "squaredcos_cap_v2") {
    betas_ = cosine_betas(n);
  } else {
    fail("schedule.kind: expected linear | scaled_linear | squaredcos_cap_v2, got '{}'", config_.kind);
  }
  alphas_ = 1.0 - betas_;
  alphas_cumprod_ = torch::cumprod(alphas_, 0);
  log_alpha_bar_f64_ = alphas_cumprod_.to(torch::kFloat64).log();
}

float NoiseSchedule::alpha_bar_f32(int64_t t) const {
  if (t < 0) return 1.0f;
  DUALIGN_CHECK(t < num_train_timesteps(), "timestep {} out of range [0, {})", t, num_train_timesteps());
  return alphas_cumprod_.data_ptr<float>()[t];  // contiguous float32 on the CPU (cumprod's output)
}

double NoiseSchedule::alpha_bar_continuous(double s) const {
  const int64_t n = num_train_timesteps();
  s = std::clamp(s, 0.0, double(n - 1));
  int64_t i = std::min<int64_t>(int64_t(std::floor(s)), n - 2);
  double w = s - double(i);
  const double* la = log_alpha_bar_f64_.data_ptr<double>();
  return std::exp((1 - w) * la[i] + w * la[i + 1]);
}

double NoiseSchedule::beta_continuous(double s) const {
  const int64_t n = num_train_timesteps();
  s = std::clamp(s, 0.0, double(n - 1));
  int64_t i = std::min<int64_t>(int64_t(std::floor(s)), n - 2);
  const double* la = log_alpha_bar_f64_.data_ptr<double>();
  return la[i] - la[i + 1];
}

namespace {
at::Tensor shape_like(at::Tensor coef, const at::Tensor& like) {
  std::vector<int64_t> shape(like.dim(), 1);
  shape[0] = coef.size(0);
  return coef.reshape(shape);
}
}  // namespace

at::Tensor NoiseSchedule::sqrt_alpha_bar(const at::Tensor& t, const at::Tensor& like) const {
  auto ac = alphas_cumprod_.to(like.device(), like.scalar_type());
  return shape_like(ac.index({t.to(like.device()).reshape({-1})}).pow(0.5), like);
}

at::Tensor NoiseSchedule::sqrt_one_minus_alpha_bar(const at::Tensor& t, const at::Tensor& like) const {
  auto ac = alphas_cumprod_.to(like.device(), like.scalar_type());
  return shape_like((1 - ac.index({t.to(like.device()).reshape({-1})})).pow(0.5), like);
}

at::Tensor NoiseSchedule::add_noise(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& t) const {
  return sqrt_alpha_bar(t, x0) * x0 + sqrt_one_minus_alpha_bar(t, x0) * eps;
}

at::Tensor NoiseSchedule::velocity(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& t) const {
  return sqrt_alpha_bar(t, x0) * eps - sqrt_one_minus_alpha_bar(t, x0) * x0;
}

at::Tensor NoiseSchedule::target(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& t) const {
  return predicts_v_ ? velocity(x0, eps, t) : eps;
}

at::Tensor NoiseSchedule::predict_x0(const at::Tensor& x_t, const at::Tensor& out, const at::Tensor& t) const {
  auto a = sqrt_alpha_bar(t, x_t), s = sqrt_one_minus_alpha_bar(t, x_t);
  return predicts_v_ ? a * x_t - s * out : (x_t - s * out) / a;
}

at::Tensor NoiseSchedule::predict_eps(const at::Tensor& x_t, const at::Tensor& out, const at::Tensor& t) const {
  auto a = sqrt_alpha_bar(t, x_t), s = sqrt_one_minus_alpha_bar(t, x_t);
  return predicts_v_ ? a * out + s * x_t : out;
}

}  // namespace dualign::diffusion
