#include "models/lora.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <sstream>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "models/unet_config.h"
#include "util/error.h"

namespace dualign::models {
namespace {

thread_local bool t_adapters_active = true;

bool matches(const std::string& path, const std::string& target) {
  return path == target || (path.size() > target.size() && path.ends_with(target) &&
                            path[path.size() - target.size() - 1] == '.');
}

// The child `name` of `parent`, created as an empty module when missing: builds the adapter tree path by path.
std::shared_ptr<torch::nn::Module> child(torch::nn::Module& parent, const std::string& name) {
  for (const auto& c : parent.named_children())
    if (c.key() == name) return c.value();
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

}  // namespace

bool adapters_active() { return t_adapters_active; }
void set_adapters_active(bool active) { t_adapters_active = active; }

LoraConfig read_lora_config(const config::Section& s) {
  LoraConfig c;
  c.rank = s.get<int64_t>("rank");
  c.alpha = s.get<double>("alpha", static_cast<double>(c.rank));
  c.targets = s.get<std::vector<std::string>>("targets", c.targets);
  s.finish();
  DUALIGN_CHECK(c.rank >= 1, "config key '{}': LoRA rank must be >= 1, got {}", s.path("rank"), c.rank);
  DUALIGN_CHECK(c.alpha > 0, "config key '{}': LoRA alpha must be positive, got {}", s.path("alpha"), c.alpha);
  DUALIGN_CHECK(!c.targets.empty(), "config key '{}': list at least one target module (e.g. to_q)", s.path("targets"));
  return c;
}

LoraLinearImpl::LoraLinearImpl(const torch::nn::LinearOptions& options) {
  torch::nn::Linear init(options);  // torch's initialisation, so networks without LoRA draw the same numbers
  weight = register_parameter("weight", init->weight);
  if (options.bias()) bias = register_parameter("bias", init->bias);
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  // aten::linear, as nn.Linear and peft call it: LibTorch's functional::linear adds the bias after a matmul with a
  // transposed view of W, which under autocast rounds x·Wᵀ before the bias and casts W again on every call.
  auto y = torch::linear(x, weight, bias);
  if (lora_A && t_adapters_active) {
    auto down = torch::linear(x.to(lora_A->weight.scalar_type()), lora_A->weight);
    y = y + torch::linear(down, lora_B->weight).to(y.scalar_type()) * scale_;
  }
  return y;
}

std::pair<torch::nn::Linear, torch::nn::Linear> LoraLinearImpl::add_adapter(int64_t rank, double scale) {
  DUALIGN_CHECK(!lora_A, "LoRA: this projection already has an adapter");
  const auto opts = weight.options();
  lora_A = register_module("lora_A", torch::nn::Linear(torch::nn::LinearOptions(in_features(), rank).bias(false)));
  lora_B = register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(rank, out_features()).bias(false)));
  lora_A->to(opts.device(), torch::kFloat32);
  lora_B->to(opts.device(), torch::kFloat32);
  torch::NoGradGuard no_grad;
  lora_B->weight.zero_();
  scale_ = scale;
  return {lora_A, lora_B};
}

std::shared_ptr<torch::nn::Module> attach_lora(torch::nn::Module& network, const LoraConfig& config) {
  DUALIGN_CHECK(config.enabled(), "attach_lora: rank must be >= 1");
  for (auto& p : network.parameters()) p.set_requires_grad(false);
  auto adapters = std::make_shared<torch::nn::Module>();
  std::vector<int64_t> hits(config.targets.size(), 0);
  for (const auto& item : network.named_modules()) {
    auto layer = std::dynamic_pointer_cast<LoraLinearImpl>(item.value());
    if (!layer) continue;
    bool selected = false;
    for (size_t i = 0; i < config.targets.size(); ++i)
      if (matches(item.key(), config.targets[i])) selected = true, ++hits[i];
    if (!selected) continue;
    auto [a, b] = layer->add_adapter(config.rank, config.scale());
    std::shared_ptr<torch::nn::Module> node = adapters;
    std::stringstream path(item.key());
    for (std::string part; std::getline(path, part, '.');) node = child(*node, part);
    node->register_module("lora_A", a);
    node->register_module("lora_B", b);
  }
  for (size_t i = 0; i < hits.size(); ++i)
    DUALIGN_CHECK(hits[i] > 0, "LoRA target '{}' matches no attention projection (LoRA targets are suffixes of "
                               "to_q, to_k, to_v or to_out.0 paths such as attn2.to_k)", config.targets[i]);
  return adapters;
}

int64_t lora_parameter_count(const UNetConfig& c, const LoraConfig& config) {
  // Per BasicTransformerBlock (dim d, cross-attention dim x): attn1 q, k, v, out all d → d; attn2 q, out d → d and
  // k, v x → d. The block counts follow UNet2DConditionModelImpl's constructor. Targets are matched against the
  // block-relative paths (attn1.to_q, ...), so a target naming one block (down_blocks.0...) is not counted.
  auto per_block = [&](int64_t d, int64_t x) {
    const std::pair<const char*, int64_t> projections[] = {
        {"attn1.to_q", d}, {"attn1.to_k", d}, {"attn1.to_v", d}, {"attn1.to_out.0", d},
        {"attn2.to_q", d}, {"attn2.to_k", x}, {"attn2.to_v", x}, {"attn2.to_out.0", d}};
    int64_t n = 0;
    for (const auto& [path, in] : projections)
      for (const auto& t : config.targets)
        if (matches(path, t)) {
          n += config.rank * (in + d);
          break;
        }
    return n;
  };
  const auto& boc = c.block_out_channels;
  const size_t n = boc.size();
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (c.down_block_types[i] == "CrossAttnDownBlock2D")
      total += c.layers_per_block * c.transformer_layers(i) * per_block(boc[i], c.cross_dim(i));
    const size_t r = n - 1 - i;
    if (c.up_block_types[i] == "CrossAttnUpBlock2D")
      total += (c.layers_per_block + 1) * c.transformer_layers(r) * per_block(boc[r], c.cross_dim(r));
  }
  if (c.mid_block_type == "UNetMidBlock2DCrossAttn")
    total += c.transformer_layers(n - 1) * per_block(boc.back(), c.cross_dim(n - 1));
  return total;
}

TensorMap lora_state_for_diffusers(const TensorMap& adapters, const LoraConfig& config) {
  TensorMap out;
  for (const auto& [name, value] : adapters) {
    DUALIGN_CHECK(name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight"),
                  "LoRA export: '{}' is not an adapter tensor (expected <path>.lora_A.weight / .lora_B.weight)", name);
    auto t = value.detach().to(torch::kCPU, torch::kFloat32);
    if (name.ends_with("lora_B.weight")) t = t * config.scale();
    out["unet." + name] = t.contiguous();
  }
  return out;
}

void save_lora_weights(const TensorMap& adapters, const LoraConfig& config, const std::string& dir) {
  std::filesystem::create_directories(dir);
  const nlohmann::json meta = {{"rank", config.rank}, {"alpha", config.alpha}, {"targets", config.targets},
                               {"scale_folded_into_lora_B", true}};
  save_safetensors((std::filesystem::path(dir) / "pytorch_lora_weights.safetensors").string(),
                   lora_state_for_diffusers(adapters, config), {{"format", "pt"}, {"dualign_lora", meta.dump()}});
}

}  // namespace dualign::models
