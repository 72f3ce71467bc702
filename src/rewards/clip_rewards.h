// Reward models on CLIP image towers (models/clip_vision.h), differentiable in the image, with the prompt side
// precomputed in Python (data_tools/encode_reward_prompts.py writes the text embeddings and, for HPSv2, the
// converted visual tower):
//   pickscore   logit_scale.exp() · cos(text, image)           PickScore_v1 (CLIP-H): transformers CLIPModel dir
//   clip_score  100 · max(cos(text, image), 0)                  CLIP ViT-L/14 (torchmetrics' definition)
//   hpsv2       cos(text, image)                                HPSv2 open_clip ViT-H-14 visual tower
//   aesthetic   MLP(image / ‖image‖)                            LAION aesthetic predictor v2: CLIP ViT-L/14 + head
// Images are [B, 3, H, W] in [-1, 1] (clip_preprocess.h resizes, crops and normalises them on tensors).
// Not here: ImageReward (a BLIP tower) and MPS (CLIP-H with a condition-fusing transformer over image tokens):
// neither is a CLIP image embedding against a text embedding, so neither fits these towers.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace dualign::config {
class Section;
}

namespace dualign::rewards {

class Reward;

bool is_clip_reward(const std::string& kind);
// Spec keys: model (a transformers CLIP directory; hpsv2: visual, the converted .safetensors), text_embeddings and
// prompt (pickscore, clip_score, hpsv2), head (aesthetic), gradient_checkpointing, preprocess {...}.
std::unique_ptr<Reward> make_clip_reward(const config::Section& spec, const torch::Device& device);

// The LAION aesthetic MLP head (improved-aesthetic-predictor): linear layers 768→1024→128→64→16→1 without
// activations, published state-dict names layers.{0,2,4,6,7} (the dropouts between them hold no weights).
class AestheticHeadImpl : public torch::nn::Module {
 public:
  explicit AestheticHeadImpl(int64_t input_size = 768);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  std::vector<torch::nn::Linear> linears_;  // registered as layers.0, .2, .4, .6, .7
};
TORCH_MODULE(AestheticHead);

}  // namespace dualign::rewards
