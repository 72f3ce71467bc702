// Noise levels σ = sqrt((1 - ᾱ) / ᾱ) of the k-diffusion view (x_σ = x0 + σ ε) used by the Euler and DPM-Solver
// schedulers, computed with the same arithmetic as diffusers so that parity holds to float32 rounding: the table is
// a float32 torch op, interpolation and the Karras ramp run in double, the results are rounded to float32.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "diffusion/schedule.h"

namespace dualign::diffusion {

// numpy.linspace(start, stop, num) in double (i · step + start, the last point exactly stop).
std::vector<double> numpy_linspace(double start, double stop, int64_t num);

// σ(t) for t = 0 .. T-1 as float32 values (torch's ((1 - ᾱ) / ᾱ) ** 0.5 in float32).
std::vector<float> sigma_table(const NoiseSchedule& schedule);

// numpy.interp(x, [0, 1, .., T-1], table): σ at fractional timesteps, in double.
std::vector<double> interp_sigmas(const std::vector<double>& timesteps, const std::vector<float>& table);

// Karras et al. (2022) eq. 5 with ρ = 7: n levels from sigma_max down to sigma_min, in double.
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int64_t n);

// exp and log of one float32 value through torch's CPU kernels, as diffusers evaluates them on 0-d tensors (their
// vectorised implementations may round differently from the C library's expf / logf in the last bit).
float torch_exp(float x);
float torch_log(float x);

// diffusers' _sigma_to_t: the fractional timestep whose σ is `sigma`, by linear interpolation in log σ between the
// two neighbouring table entries (log σ of the float32 table is itself float32, as numpy computes it).
double sigma_to_timestep(double sigma, const std::vector<float>& table);

}  // namespace dualign::diffusion
