// Image rewards on latent samples: x0 latents → AutoencoderKL.decode_latents (1 / scaling_factor, the decoder)
// → the image reward, differentiable end to end (the constrained method back-propagates through the sampler, the
// VAE decoder and the reward model). Spec, under any image reward:
//   latents: {vae: DIR, gradient_checkpointing: false, slicing: false, tiling: false}
// DIR is a diffusers AutoencoderKL folder or an SD pipeline root (its vae/). Rewards that name the same VAE share
// one decoder, and a batch they all score is decoded once (several constraints on the same samples).
#pragma once
#include <memory>

#include <torch/torch.h>

namespace dualign::config {
class Section;
}

namespace dualign::rewards {

class Reward;

std::unique_ptr<Reward> on_decoded_latents(std::unique_ptr<Reward> image_reward, const config::Section& latents,
                                           const torch::Device& device);

}  // namespace dualign::rewards
