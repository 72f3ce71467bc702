// Noise schedules of discrete-time diffusion (DDPM family), computed exactly like diffusers so that
// alphas_cumprod match bit for bit: betas and the cumulative product are float32 torch ops, the cosine
// schedule is evaluated in double and rounded to float32, as diffusers does.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace dualign::diffusion {

struct ScheduleConfig {
  std::string kind = "linear";  // linear | scaled_linear | squaredcos_cap_v2
  int64_t num_train_timesteps = 1000;
  double beta_start = 1e-4, beta_end = 0.02;
  std::string prediction = "epsilon";  // epsilon | v_prediction (alias "v")
};

class NoiseSchedule {
 public:
  explicit NoiseSchedule(ScheduleConfig config = {});

  const ScheduleConfig& config() const { return config_; }
  int64_t num_train_timesteps() const { return config_.num_train_timesteps; }
  bool predicts_v() const { return predicts_v_; }

  // float32 [T] on CPU, exactly as diffusers' schedulers hold them.
  const at::Tensor& betas() const { return betas_; }
  const at::Tensor& alphas() const { return alphas_; }
  const at::Tensor& alphas_cumprod() const { return alphas_cumprod_; }
  // alphas_cumprod[t] read from host memory, as float32 and as double (t < 0 → 1): the schedule lives on the CPU, so
  // samplers read their coefficients without a host sync (no .item()).
  float alpha_bar_f32(int64_t t) const;
  double alpha_bar(int64_t t) const { return alpha_bar_f32(t); }

  // Continuous-time view used by the SDE/ODE samplers: s ∈ [0, T-1] in timestep units, log ᾱ linearly
  // interpolated between integer timesteps; beta(s) = -d log ᾱ / ds (piecewise constant).
  double alpha_bar_continuous(double s) const;
  double beta_continuous(double s) const;

  // Per-sample coefficients for t [B] (int64, any device): results broadcast against x [B, ...].
  // x_t = sqrt(ᾱ_t) x0 + sqrt(1-ᾱ_t) eps
  at::Tensor add_noise(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& t) const;
  // v = sqrt(ᾱ_t) eps - sqrt(1-ᾱ_t) x0 (diffusers' get_velocity)
  at::Tensor velocity(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& t) const;
  // The regression target for the configured prediction type: eps or v.
  at::Tensor target(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& t) const;
  // Convert a model output (eps or v, per config) to x0 and eps.
  at::Tensor predict_x0(const at::Tensor& x_t, const at::Tensor& model_out, const at::Tensor& t) const;
  at::Tensor predict_eps(const at::Tensor& x_t, const at::Tensor& model_out, const at::Tensor& t) const;

  // sqrt(ᾱ_t) and sqrt(1-ᾱ_t) gathered for t [B] and shaped [B, 1, ..., 1] like `like`.
  at::Tensor sqrt_alpha_bar(const at::Tensor& t, const at::Tensor& like) const;
  at::Tensor sqrt_one_minus_alpha_bar(const at::Tensor& t, const at::Tensor& like) const;

 private:
  ScheduleConfig config_;
  bool predicts_v_ = false;
  at::Tensor betas_, alphas_, alphas_cumprod_;
  at::Tensor log_alpha_bar_f64_;  // for the continuous view
};

}  // namespace dualign::diffusion
