// Sampling the composition. Two samplers on the λ-weighted sum of the components' ε:
//
// 1. DDIM on ε_λ (Algorithm 3's surrogate, the image experiments): cheap, but Σ λ_i s_i is the score of the
//    product of the *noised* marginals, not of the noised product, so the samples are only close to q_AND.
// 2. Annealed Langevin (ULA) on ε_λ (Du et al. 2023, "Reduce, Reuse, Recycle"), the primal step's sampler:
//    a DDIM predictor from level to level plus L Langevin corrector steps at each level,
//        x ← x + h s_λ(x, t) + sqrt(2h) z,   s_λ = −ε_λ / σ_t,   h = c · (ᾱ_t κ² + σ_t²),
//    which corrects toward Π p_{i,t}^{λ_i} at every level; at the last levels Π p_{i,t}^{λ_i} is the product
//    itself, so the output is close to q_AND where plain DDIM on the sum is not. h follows the variance of x_t
//    (κ = the data's scale): with h ∝ σ_t² alone the corrector stops mixing near t = 0 (σ_0² = 1e-4) and the
//    samples keep DDIM's error; c = 0.02 mixes in ~1/c steps with a ULA variance bias of about c/2.
//    MALA needs the product's (unnormalised) density, which ε-models do not give; it is not offered.
//
// Both draw their random numbers for the whole (global) sample set from one seed and return rows
// [start, start + length): a rank's share is the same for any number of ranks.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "compose/components.h"
#include "diffusion/sampler.h"

namespace dualign::compose {

struct Rows {
  int64_t start = 0, length = 0;
  // Rank r's share of n rows: contiguous, sizes differ by at most one.
  static Rows share(int64_t n, int rank, int world_size);
};

// x_T ~ N(0, I) for all n samples from `seed`, restricted to `rows`.
torch::Tensor initial_noise(int64_t n, const std::vector<int64_t>& sample_shape, uint64_t seed, Rows rows);

// DDIM (or DDPM) on `eps` from x_T; `batch` rows per call. No gradients. Returns x_0 on x_T's device.
torch::Tensor sample_eps(const EpsFn& eps, const diffusion::NoiseSchedule& schedule,
                         const diffusion::SamplerConfig& sampler, const torch::Tensor& x_T, int64_t batch = 512);

struct LangevinConfig {
  int64_t levels = 50;         // DDIM predictor steps (noise levels)
  int64_t corrector_steps = 10;  // ULA steps per level
  double step_scale = 0.02;    // c in h = c (ᾱ_t κ² + 1 − ᾱ_t)
  double data_scale = 1.0;     // κ: the data's standard deviation scale
};
// Annealed ULA on `eps` for n samples (global), returning `rows` of them.
torch::Tensor annealed_langevin(const EpsFn& eps, const diffusion::NoiseSchedule& schedule, const LangevinConfig& cfg,
                                int64_t n, const std::vector<int64_t>& sample_shape, uint64_t seed, Rows rows,
                                const torch::Device& device);

}  // namespace dualign::compose
