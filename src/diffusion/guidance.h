// Classifier-free guidance: ε̃ = ε_u + w (ε_c - ε_u) (equally valid on v outputs, which are linear in ε), with
// diffusers' guidance_rescale φ (Lin et al. 2023, §3.4): ε̃ ← φ · ε̃ · std(ε_c) / std(ε̃) + (1 - φ) · ε̃, the
// standard deviations taken per sample over all other dimensions (unbiased, as torch.std).
#pragma once
#include <ATen/core/Tensor.h>

#include "diffusion/sampler.h"

namespace dualign::diffusion {

// Two model calls per step.
ScoreFn classifier_free_guidance(ScoreFn conditional, ScoreFn unconditional, double scale);

// One model call on the doubled batch [x; x]: `model_on_pair` must treat the first half as unconditional and
// the second half as conditional (e.g. null labels / empty prompt embeddings first), as StableDiffusionPipeline
// does. `rescale` > 0 applies guidance_rescale.
ScoreFn classifier_free_guidance_batched(ScoreFn model_on_pair, double scale, double rescale = 0.0);

// diffusers' rescale_noise_cfg: the guided output pulled toward the conditional output's per-sample std.
at::Tensor rescale_guidance(const at::Tensor& guided, const at::Tensor& conditional, double rescale);

// The same as a guidance hook on top of a conditional sampler: Δε = (w - 1)(ε_c - ε_u), where ε_c is the
// sampler's ε and `unconditional_eps` returns ε_u (already in ε space).
GuidanceFn cfg_guidance(ScoreFn unconditional_eps, double scale);

}  // namespace dualign::diffusion
