// CLIP image preprocessing on tensors, differentiable end to end (reward gradients flow back to the pixels):
//   [-1, 1] → [0, 1] (clamped, as the reward code of the constrained-alignment reference does)
//   → resize: shortest edge to `size` then center crop to `crop` (CLIPImageProcessor), or longest edge to `size`
//     and zero padding to a square (HPSv2's evaluation transform)
//   → (x − mean) / std per channel
// Resizing is torch's antialiased bicubic or bilinear interpolation, the same as torchvision's resize of tensors
// (transformers' torchvision image processor). PIL's resize on uint8 images rounds and clips, so scores from PIL
// preprocessed images differ slightly from these (about 1e-3 on tiny random models).
#pragma once
#include <torch/torch.h>

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace dualign::config {
class Section;
}

namespace dualign::models {

struct ClipPreprocess {
  int64_t size = 224;  // shortest edge (crop mode) or longest edge (pad mode)
  int64_t crop = 224;  // output side in crop mode
  std::string resize = "crop";         // crop | pad
  std::string interpolation = "bicubic";  // bicubic | bilinear
  std::vector<double> mean{0.48145466, 0.4578275, 0.40821073};
  std::vector<double> std{0.26862954, 0.26130258, 0.27577711};

  // [B, 3, H, W] in [-1, 1] → pixel_values [B, 3, side, side]
  torch::Tensor operator()(const torch::Tensor& images) const;
  int64_t output_side() const { return resize == "crop" ? crop : size; }

  // Defaults for a tower of `image_size`, overridden by a transformers preprocessor_config.json (size, crop_size,
  // image_mean, image_std, resample) when given.
  static ClipPreprocess for_tower(int64_t image_size, const nlohmann::json& preprocessor_config);
  // Reads optional keys resize / interpolation / size / crop / mean / std of a reward's `preprocess` section.
  void override_from(const config::Section& section);
};

}  // namespace dualign::models
