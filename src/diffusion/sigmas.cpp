#include "diffusion/sigmas.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace dualign::diffusion {

std::vector<double> numpy_linspace(double start, double stop, int64_t num) {
  DUALIGN_CHECK(num >= 1, "linspace needs at least one point, got {}", num);
  std::vector<double> out(size_t(num), start);
  if (num == 1) return out;
  const double step = (stop - start) / double(num - 1);
  for (int64_t i = 0; i < num; ++i) out[size_t(i)] = double(i) * step + start;
  out.back() = stop;
  return out;
}

float torch_exp(float x) { return torch::exp(torch::scalar_tensor(x, torch::kFloat32)).item<float>(); }
float torch_log(float x) { return torch::log(torch::scalar_tensor(x, torch::kFloat32)).item<float>(); }

std::vector<float> sigma_table(const NoiseSchedule& schedule) {
  const auto& ac = schedule.alphas_cumprod();  // float32, as diffusers holds it
  auto sigmas = ((1 - ac) / ac).pow(0.5).contiguous();
  const float* p = sigmas.data_ptr<float>();
  return {p, p + sigmas.numel()};
}

std::vector<double> interp_sigmas(const std::vector<double>& timesteps, const std::vector<float>& table) {
  const auto n = int64_t(table.size());
  std::vector<double> out;
  out.reserve(timesteps.size());
  for (double t : timesteps) {
    if (t <= 0) {
      out.push_back(table.front());
    } else if (t >= double(n - 1)) {
      out.push_back(table.back());
    } else {
      const auto i = int64_t(std::floor(t));
      const double lo = table[size_t(i)], hi = table[size_t(i + 1)];
      // numpy's interp: slope · (x - x_i) + y_i
      out.push_back((hi - lo) * (t - double(i)) + lo);
    }
  }
  return out;
}

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int64_t n) {
  constexpr double rho = 7.0;
  const double min_inv_rho = std::pow(sigma_min, 1 / rho), max_inv_rho = std::pow(sigma_max, 1 / rho);
  std::vector<double> out;
  for (double ramp : numpy_linspace(0, 1, n)) out.push_back(std::pow(max_inv_rho + ramp * (min_inv_rho - max_inv_rho), rho));
  return out;
}

double sigma_to_timestep(double sigma, const std::vector<float>& table) {
  const auto n = int64_t(table.size());
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  std::vector<float> log_table(table.size());
  for (size_t i = 0; i < table.size(); ++i) log_table[i] = std::log(table[i]);
  // index of the last table entry whose log σ is <= log_sigma (0 when there is none), at most T-2
  int64_t low = 0;
  for (int64_t i = 0; i < n; ++i)
    if (log_sigma - double(log_table[size_t(i)]) >= 0) low = i;
  low = std::min(low, n - 2);
  const float lo = log_table[size_t(low)], hi = log_table[size_t(low + 1)];
  double w = (double(lo) - log_sigma) / double(lo - hi);  // lo - hi in float32, as numpy
  w = std::clamp(w, 0.0, 1.0);
  return (1 - w) * double(low) + w * double(low + 1);
}

}  // namespace dualign::diffusion
