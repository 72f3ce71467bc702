#include "models/clip_preprocess.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "util/error.h"

namespace dualign::models {
namespace F = torch::nn::functional;

torch::Tensor ClipPreprocess::operator()(const torch::Tensor& images) const {
  DUALIGN_CHECK(images.dim() == 4 && images.size(1) == 3, "CLIP preprocessing: expected RGB images [B, 3, H, W], got {}",
                c10::str(images.sizes()));
  auto x = (images.to(torch::kFloat32) * 0.5 + 0.5).clamp(0, 1);
  const int64_t h = x.size(2), w = x.size(3);
  int64_t nh = size, nw = size;
  if (resize == "crop") {  // transformers' shortest-edge rule: the short side becomes `size`, the long one truncates
    if (w <= h) nh = static_cast<int64_t>(static_cast<double>(size) * h / w);
    else nw = static_cast<int64_t>(static_cast<double>(size) * w / h);
  } else {  // HPSv2's ResizeMaxSize: the long side becomes `size`, Python's round (half to even) for the other
    const double scale = static_cast<double>(size) / static_cast<double>(std::max(h, w));
    nh = static_cast<int64_t>(std::nearbyint(h * scale));
    nw = static_cast<int64_t>(std::nearbyint(w * scale));
  }
  if (nh != h || nw != w) {
    auto options = F::InterpolateFuncOptions().size(std::vector<int64_t>{nh, nw}).align_corners(false).antialias(true);
    if (interpolation == "bilinear") options.mode(torch::kBilinear);
    else options.mode(torch::kBicubic);
    x = F::interpolate(x, options);
  }
  if (resize == "crop") {
    // torchvision center_crop: top = round((h − crop) / 2) with Python's round (half to even); smaller images
    // are zero-padded first
    if (nh < crop || nw < crop) {
      const int64_t ph = std::max<int64_t>(crop - nh, 0), pw = std::max<int64_t>(crop - nw, 0);
      x = F::pad(x, F::PadFuncOptions({pw / 2, (pw + 1) / 2, ph / 2, (ph + 1) / 2}));
    }
    const auto top = static_cast<int64_t>(std::nearbyint((x.size(2) - crop) / 2.0));
    const auto left = static_cast<int64_t>(std::nearbyint((x.size(3) - crop) / 2.0));
    x = x.slice(2, top, top + crop).slice(3, left, left + crop);
  } else {
    const int64_t ph = size - nh, pw = size - nw;  // HPSv2's ResizeMaxSize: pad the short side with 0
    x = F::pad(x, F::PadFuncOptions({pw / 2, pw - pw / 2, ph / 2, ph - ph / 2}));
  }
  auto m = torch::tensor(mean, x.options()).view({1, 3, 1, 1});
  auto s = torch::tensor(std, x.options()).view({1, 3, 1, 1});
  return (x - m) / s;
}

ClipPreprocess ClipPreprocess::for_tower(int64_t image_size, const nlohmann::json& pc) {
  ClipPreprocess p;
  p.size = p.crop = image_size;
  if (!pc.is_object()) return p;
  if (pc.contains("size")) {
    const auto& s = pc["size"];
    p.size = s.is_object() ? s.value("shortest_edge", image_size) : s.get<int64_t>();
  }
  if (pc.contains("crop_size")) {
    const auto& s = pc["crop_size"];
    p.crop = s.is_object() ? s.value("height", image_size) : s.get<int64_t>();
  }
  if (pc.contains("image_mean")) p.mean = pc["image_mean"].get<std::vector<double>>();
  if (pc.contains("image_std")) p.std = pc["image_std"].get<std::vector<double>>();
  if (pc.contains("resample")) p.interpolation = pc["resample"].get<int>() == 2 ? "bilinear" : "bicubic";  // PIL codes
  return p;
}

void ClipPreprocess::override_from(const config::Section& s) {
  resize = s.get<std::string>("resize", resize);
  interpolation = s.get<std::string>("interpolation", interpolation);
  size = s.get<int64_t>("size", size);
  crop = s.get<int64_t>("crop", resize == "crop" ? crop : size);
  mean = s.get<std::vector<double>>("mean", mean);
  std = s.get<std::vector<double>>("std", std);
  s.finish();
  DUALIGN_CHECK(resize == "crop" || resize == "pad", "config key '{}': expected crop or pad, got '{}'", s.path("resize"),
                resize);
  DUALIGN_CHECK(interpolation == "bicubic" || interpolation == "bilinear",
                "config key '{}': expected bicubic or bilinear, got '{}'", s.path("interpolation"), interpolation);
  DUALIGN_CHECK(mean.size() == 3 && std.size() == 3, "config key '{}': mean and std need 3 values (RGB)", s.path("mean"));
  DUALIGN_CHECK(size > 0 && crop > 0, "config key '{}': size and crop must be positive", s.path("size"));
}

}  // namespace dualign::models
