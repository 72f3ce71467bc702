// Rewards: higher is better. Used to label preference pairs (Bradley–Terry), to pick desirable samples for KTO,
// and by evaluation (held-out reward, win rates). Inputs are samples in model space: points, or images in
// [-1, 1] shaped [B, C, H, W].
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "data/batch.h"

namespace dualign::config {
class Section;
}

namespace dualign::rewards {

class Reward {
 public:
  virtual ~Reward() = default;
  virtual std::string describe() const = 0;
  // x [B, ...] → [B] float32 rewards. `cond` may be empty (unconditional samples).
  virtual torch::Tensor score(const torch::Tensor& x, const data::Condition& cond) = 0;
};

// Builds the reward a config section describes (strict keys), e.g.
//   {kind: gmm_target, target: [2.5, 0.0]}                          r = -||x - target||^2
//   {kind: classifier, checkpoint: PATH, classes: [5, 7, 9]}        r = log sum_{c in classes} p(c | x)
//   {kind: pickscore, model: DIR, text_embeddings: FILE}            CLIP reward models (clip_rewards.h)
//   {kind: saturation}                                              image statistics (image_statistics.h)
// Any image reward also takes
//   latents: {vae: DIR, ...}     samples are SD latents, decoded by the VAE first (latent_decoding.h)
//   zscore: {mean, std} | {stats: FILE.json}   r̃ = (r − mean) / (std + 1e-8), pretrained-model statistics
std::unique_ptr<Reward> make_reward(const config::Section& reward, const torch::Device& device);

}  // namespace dualign::rewards
