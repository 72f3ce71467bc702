// Hand-made image statistics, the formulas of the constrained-alignment reference code (Khalafi et al. 2025,
// differentiable_losses.py), each a differentiable function of RGB images [B, 3, H, W] in [-1, 1] → [B].
// Every one first maps to [0, 1] and clamps, x = clamp(0.5 · img + 0.5, 0, 1), with luminance
// Y = 0.2126 R + 0.7152 G + 0.0722 B (grayscale images [B, 1, H, W] are Y itself: brightness and the contrasts
// take them, saturation and colorfulness need RGB):
//   brightness       mean Y
//   global_contrast  std Y (unbiased, torch.std)
//   local_contrast   mean |Y − G_σ * Y|, G_σ a k×k Gaussian blur with reflect padding (torchvision GaussianBlur)
//   saturation       mean (max(R,G,B) − min(R,G,B)) / (max(R,G,B) + ε), ε = 1e-8
//   colorfulness     Hasler–Süsstrunk: √(σ_rg² + σ_yb²) + 0.3 √(μ_rg² + μ_yb²), rg = R − G, yb = (R + G)/2 − B
//                    (unbiased σ)
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

namespace dualign::config {
class Section;
}

namespace dualign::rewards {

class Reward;

torch::Tensor brightness(const torch::Tensor& images);
torch::Tensor global_contrast(const torch::Tensor& images);
torch::Tensor local_contrast(const torch::Tensor& images, int64_t kernel_size = 5, double sigma = 1.0);
torch::Tensor saturation(const torch::Tensor& images, double epsilon = 1e-8);
torch::Tensor colorfulness(const torch::Tensor& images);

// Whether `kind` names one of the statistics above.
bool is_image_statistic(const std::string& kind);
// {kind: <statistic>, direction: high | low (low negates), kernel_size, sigma (local_contrast), epsilon (saturation)}
std::unique_ptr<Reward> make_image_statistic(const config::Section& spec);

}  // namespace dualign::rewards
