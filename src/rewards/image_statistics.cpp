#include "rewards/image_statistics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "config/config.h"
#include "rewards/reward.h"
#include "util/error.h"

namespace dualign::rewards {
namespace F = torch::nn::functional;
namespace {

// [B, 3, H, W] in [-1, 1] → R, G, B planes [B, H, W] in [0, 1]
std::vector<torch::Tensor> rgb(const torch::Tensor& images) {
  DUALIGN_CHECK(images.dim() == 4 && images.size(1) == 3, "image statistic: expected RGB images [B, 3, H, W], got {}",
                c10::str(images.sizes()));
  auto x = (images.to(torch::kFloat32) * 0.5 + 0.5).clamp(0, 1);
  return {x.select(1, 0), x.select(1, 1), x.select(1, 2)};
}

// Grayscale images [B, 1, H, W] are their own luminance (Fashion-MNIST); colour needs RGB.
torch::Tensor luminance(const torch::Tensor& images) {
  if (images.dim() == 4 && images.size(1) == 1) return (images.to(torch::kFloat32) * 0.5 + 0.5).clamp(0, 1).select(1, 0);
  auto c = rgb(images);
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}

const std::vector<std::string> kKinds{"brightness", "global_contrast", "local_contrast", "saturation", "colorfulness"};

class ImageStatisticReward : public Reward {
 public:
  ImageStatisticReward(std::string kind, bool high, int64_t kernel_size, double sigma, double epsilon)
      : kind_(std::move(kind)), high_(high), kernel_size_(kernel_size), sigma_(sigma), epsilon_(epsilon) {}
  std::string describe() const override {
    std::string params = kind_ == "local_contrast" ? fmt::format(" (kernel {}, sigma {})", kernel_size_, sigma_) : "";
    return fmt::format("{}{} of the image{}", high_ ? "" : "minus ", kind_, params);
  }
  torch::Tensor score(const torch::Tensor& x, const data::Condition&) override {
    torch::Tensor r;
    if (kind_ == "brightness") r = brightness(x);
    else if (kind_ == "global_contrast") r = global_contrast(x);
    else if (kind_ == "local_contrast") r = local_contrast(x, kernel_size_, sigma_);
    else if (kind_ == "saturation") r = saturation(x, epsilon_);
    else r = colorfulness(x);
    return high_ ? r : -r;
  }

 private:
  std::string kind_;
  bool high_;
  int64_t kernel_size_;
  double sigma_, epsilon_;
};

}  // namespace

torch::Tensor brightness(const torch::Tensor& images) { return luminance(images).mean({1, 2}); }

torch::Tensor global_contrast(const torch::Tensor& images) { return luminance(images).flatten(1).std(1); }

torch::Tensor local_contrast(const torch::Tensor& images, int64_t kernel_size, double sigma) {
  DUALIGN_CHECK(kernel_size >= 1 && kernel_size % 2 == 1 && sigma > 0,
                "local_contrast: kernel_size must be odd and positive and sigma positive (got {}, {})", kernel_size, sigma);
  auto y = luminance(images).unsqueeze(1);  // [B, 1, H, W]
  // torchvision's kernel: exp(−x²/2σ²) on x = −(k−1)/2 … (k−1)/2, normalised, outer product; reflect padding
  auto pos = torch::linspace(-(kernel_size - 1) / 2.0, (kernel_size - 1) / 2.0, kernel_size, y.options());
  auto k1 = torch::exp(-0.5 * (pos / sigma).pow(2));
  k1 = k1 / k1.sum();
  auto kernel = torch::outer(k1, k1).view({1, 1, kernel_size, kernel_size});
  const int64_t p = kernel_size / 2;
  auto blurred = F::conv2d(F::pad(y, F::PadFuncOptions({p, p, p, p}).mode(torch::kReflect)), kernel);
  return (y - blurred).abs().mean({1, 2, 3});
}

torch::Tensor saturation(const torch::Tensor& images, double epsilon) {
  auto c = rgb(images);
  auto hi = torch::maximum(torch::maximum(c[0], c[1]), c[2]);
  auto lo = torch::minimum(torch::minimum(c[0], c[1]), c[2]);
  return ((hi - lo) / (hi + epsilon)).mean({1, 2});
}

torch::Tensor colorfulness(const torch::Tensor& images) {
  auto c = rgb(images);
  auto rg = (c[0] - c[1]).flatten(1), yb = (0.5 * (c[0] + c[1]) - c[2]).flatten(1);
  auto spread = torch::sqrt(rg.std(1).pow(2) + yb.std(1).pow(2));
  auto offset = torch::sqrt(rg.mean(1).pow(2) + yb.mean(1).pow(2));
  return spread + 0.3 * offset;
}

bool is_image_statistic(const std::string& kind) {
  return std::find(kKinds.begin(), kKinds.end(), kind) != kKinds.end();
}

std::unique_ptr<Reward> make_image_statistic(const config::Section& s) {
  const auto kind = s.get<std::string>("kind");
  const auto direction = s.get<std::string>("direction", "high");
  const bool local = kind == "local_contrast";
  const int64_t kernel_size = local ? s.get<int64_t>("kernel_size", 5) : 5;
  const double sigma = local ? s.get<double>("sigma", 1.0) : 1.0;
  const double epsilon = kind == "saturation" ? s.get<double>("epsilon", 1e-8) : 1e-8;
  DUALIGN_CHECK(direction == "high" || direction == "low", "config key '{}': expected high or low, got '{}'",
                s.path("direction"), direction);
  DUALIGN_CHECK(kernel_size >= 1 && kernel_size % 2 == 1, "config key '{}': expected an odd kernel size, got {}",
                s.path("kernel_size"), kernel_size);
  DUALIGN_CHECK(sigma > 0 && epsilon > 0, "config key '{}': sigma and epsilon must be positive", s.prefix());
  return std::make_unique<ImageStatisticReward>(kind, direction == "high", kernel_size, sigma, epsilon);
}

}  // namespace dualign::rewards
