// The per-step draws of the Stable Diffusion recipe's data path (the official Diffusion-DPO training script
// encodes every image each step): a latent is drawn from the stored VAE posterior, an image is replaced by its
// horizontally flipped version at a given rate, and a row's text condition by the empty prompt's at a given rate.
// Every draw is made for the whole global micro-batch from the stream (batch.seed, purpose) and sliced, so any
// number of ranks sees the same latents, flips and dropped prompts, and a resume repeats them.
#pragma once
#include <torch/torch.h>

#include "data/batch.h"

namespace dualign::data {

// The stored VAE posterior of one latent per row, in the scaled latent space (mean × scaling_factor, log-variance
// + 2 log scaling_factor): mean and log-variance, and the same for the horizontally flipped image. Undefined
// parts are not stored.
struct LatentPosterior {
  torch::Tensor mean, logvar;            // [local, C, h, w]
  torch::Tensor flip_mean, flip_logvar;  // the posterior of the flipped image (not the flipped latent)
};

// Each row takes the flipped image's posterior with probability `probability` (independent U[0, 1) per row of
// the global micro-batch, stream `purpose`). Needs flip_mean (and flip_logvar when logvar is defined).
LatentPosterior choose_flipped(const LatentPosterior& posterior, double probability, const Batch& batch,
                               const char* purpose);

// z = mean + exp(logvar / 2) · ε with ε ~ N(0, I) drawn for the global micro-batch (stream `purpose`), in float32.
torch::Tensor sample_posterior(const torch::Tensor& mean, const torch::Tensor& logvar, const Batch& batch,
                               const char* purpose);

// The text condition [local, ...] (hidden states [local, L, D], or SDXL's pooled embeddings [local, D']) with each
// row replaced by `empty` [1, ...] with probability `probability`; the rows follow from (batch seed, purpose) alone,
// so the hidden states and the pooled embeddings of one batch drop the same rows under the same purpose.
torch::Tensor drop_prompts(const torch::Tensor& text, const torch::Tensor& empty, double probability,
                           const Batch& batch, const char* purpose);

}  // namespace dualign::data
