#include "models/diffusers_io.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "util/error.h"

namespace dualign::models {
namespace fs = std::filesystem;

TensorMap state_dict(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& p : module.named_parameters()) out[p.key()] = p.value();
  for (const auto& b : module.named_buffers()) out[b.key()] = b.value();
  return out;
}

void load_state_dict(torch::nn::Module& module, const TensorMap& tensors, const std::string& origin) {
  auto own = state_dict(module);
  std::vector<std::string> missing, unexpected, misshaped;
  for (const auto& [name, t] : own) {
    auto it = tensors.find(name);
    if (it == tensors.end()) missing.push_back(name);
    else if (it->second.sizes() != t.sizes())
      misshaped.push_back(fmt::format("{} (file {}, model {})", name, c10::str(it->second.sizes()), c10::str(t.sizes())));
  }
  for (const auto& [name, t] : tensors)
    if (!own.count(name)) unexpected.push_back(name);
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
      return s.empty() ? std::string("none") : s;
    };
    fail("state dict '{}' does not match the model: {} missing [{}]; {} unexpected [{}]; {} mis-shaped [{}]", origin,
         missing.size(), list(missing), unexpected.size(), list(unexpected), misshaped.size(), list(misshaped));
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : own) t.copy_(tensors.at(name).to(t.device(), t.scalar_type()));
}

namespace {
// <dir>, or the unet/ folder of a pipeline root.
fs::path unet_dir(const std::string& dir_in) {
  fs::path dir(dir_in);
  if (!fs::exists(dir / "config.json") && fs::exists(dir / "unet" / "config.json")) dir /= "unet";
  DUALIGN_CHECK(fs::exists(dir / "config.json"), "diffusers UNet '{}': no config.json", dir.string());
  return dir;
}
}  // namespace

UNetConfig read_diffusers_unet_config(const std::string& dir) {
  return UNetConfig::from_file((unet_dir(dir) / "config.json").string());
}

UNet2DConditionModel load_diffusers_unet(const std::string& dir_in) {
  const fs::path dir = unet_dir(dir_in);
  const auto weights_path = dir / "diffusion_pytorch_model.safetensors";
  DUALIGN_CHECK(fs::exists(weights_path), "diffusers UNet '{}': no diffusion_pytorch_model.safetensors", dir.string());
  UNet2DConditionModel unet(UNetConfig::from_file((dir / "config.json").string()));
  load_state_dict(*unet, load_safetensors(weights_path.string()), weights_path.string());
  return unet;
}

void save_diffusers_unet(const UNet2DConditionModelImpl& unet, const std::string& dir_in, torch::Dtype dtype) {
  fs::path dir(dir_in);
  fs::create_directories(dir);
  TensorMap tensors;
  for (const auto& [name, t] : state_dict(unet)) tensors[name] = t.detach().to(torch::kCPU, dtype);
  save_safetensors((dir / "diffusion_pytorch_model.safetensors").string(), tensors, {{"format", "pt"}});
  auto config = unet.config().to_json();
  config["_diffusers_version"] = "0.42.1";
  std::ofstream out(dir / "config.json");
  DUALIGN_CHECK(out.good(), "cannot write '{}'", (dir / "config.json").string());
  out << config.dump(2) << "\n";
}

void assemble_pipeline(const std::string& base_in, const std::string& out_in, bool copy) {
  const fs::path base = fs::absolute(base_in).lexically_normal(), out(out_in);
  DUALIGN_CHECK(fs::is_regular_file(base / "model_index.json"),
                "--base {}: no model_index.json (expected a diffusers pipeline directory such as stable-diffusion-v1-5)",
                base.string());
  const auto base_unet = base / "unet" / "config.json";
  if (fs::exists(base_unet)) {
    auto theirs = UNetConfig::from_file(base_unet.string()).to_json();
    auto ours = UNetConfig::from_file((out / "unet" / "config.json").string()).to_json();
    std::vector<std::string> differ;
    for (const auto& [key, value] : ours.items())
      if (!theirs.contains(key) || theirs[key] != value) differ.push_back(key);
    DUALIGN_CHECK(differ.empty(), "--base {}: its unet/config.json differs from the exported UNet in {} (a pipeline "
                  "needs the UNet its VAE and text encoder were made for)", base.string(), fmt::format("{}", fmt::join(differ, ", ")));
  }
  for (const auto& entry : fs::directory_iterator(base)) {
    const auto name = entry.path().filename();
    if (name == "unet") continue;
    const auto target = out / name;
    if (copy) fs::copy(entry.path(), target, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    else fs::create_symlink(entry.path(), target);
  }
}

}  // namespace dualign::models
