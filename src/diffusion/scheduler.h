// Inference schedulers as diffusers runs them in StableDiffusionPipeline: DDIM, DDPM, PNDM (PLMS), Euler, Euler
// ancestral and DPM-Solver++ (multistep, optional Karras σ). Each reproduces the diffusers class of the same
// config step for step (tests/parity: latents within 1e-4 after 20 and 50 guided steps of a tiny UNet).
//
// The loop (sample_with_scheduler) is diffusers' loop:
//   x = x_T · init_noise_sigma
//   for i: out = model(scale_model_input(x, i), model_timestep(i)); x = step(i, out, x, noise_i)
// Multistep schedulers (PNDM, DPM-Solver) keep the previous outputs: make one Scheduler per trajectory batch and
// call step(0), step(1), ... in order.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <vector>

#include "diffusion/sampler.h"
#include "diffusion/schedule.h"

namespace dualign::diffusion {

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // Number of model calls (PNDM with PLMS makes one more than num_inference_steps).
  virtual size_t num_steps() const = 0;
  // The timestep the model sees at step i (an integer for the discrete schedulers, fractional for Euler).
  virtual double model_timestep(size_t i) const = 0;
  virtual bool integer_timesteps() const { return true; }
  // Scale of x_T ~ N(0, I) at the start (σ_max-like for Euler, 1 otherwise).
  virtual double init_noise_sigma() const { return 1.0; }
  // What the model is given at step i (Euler divides by sqrt(σ² + 1)).
  virtual at::Tensor scale_model_input(const at::Tensor& x, size_t i) const { return x; }
  // Whether step i needs a standard-normal draw shaped like x (ancestral / stochastic steps).
  virtual bool needs_noise(size_t i) const { (void)i; return false; }
  // One update from step i: model output (ε or v, already guided) at x → the next x.
  virtual at::Tensor step(size_t i, const at::Tensor& model_out, const at::Tensor& x, const at::Tensor& noise) = 0;

  // model_timestep(i) as a [batch] tensor: int64 for integer timesteps, float32 otherwise (as diffusers passes it).
  at::Tensor timestep_tensor(size_t i, int64_t batch, const at::Device& device) const;
};

// Holds a reference to `schedule`: it must outlive the scheduler. Errors name the sampler key that is invalid.
std::unique_ptr<Scheduler> make_scheduler(const NoiseSchedule& schedule, const SamplerConfig& config);

// Draws the noise of a stochastic step: shaped like `like` (on its device and dtype).
using NoiseFn = std::function<at::Tensor(const at::Tensor& like)>;

// The pipeline loop from x_T (unscaled standard normal) to x_0. `noise` is called only for steps that need it.
at::Tensor sample_with_scheduler(Scheduler& scheduler, const ScoreFn& model, const at::Tensor& x_T,
                                 const NoiseFn& noise = {});

// Noise from one generator per row, as diffusers' randn_tensor draws with a list of generators: row r's draw is
// randn([1, ...], generators[r]) on the CPU, then the rows are stacked and moved to like's device.
NoiseFn per_row_noise(std::vector<at::Generator> generators);

}  // namespace dualign::diffusion
