// LoRA (Hu et al. 2021) on the UNet's attention projections, in peft's layout so diffusers' `load_lora_weights`
// reads what dualign exports.
//
//   y = W x + b + (alpha / rank) · B (A x),   A [rank, in] (Kaiming-uniform, like peft), B [out, rank] (zeros)
//
// B = 0 at the start, so a fresh LoRA policy computes exactly its base. The base weights are frozen and shared:
// `AdaptersDisabled` bypasses every adapter on this thread, which makes the same network the frozen reference
// ("LoRA disabled") of preference and constrained methods, with no second copy of the weights. The optimizer, the
// EMA and checkpoints see only the adapters (attach_lora's module).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "models/safetensors.h"

namespace dualign::config {
class Section;
}

namespace dualign::models {

struct UNetConfig;

struct LoraConfig {
  int64_t rank = 0;  // 0 = no LoRA
  double alpha = 0;  // scale = alpha / rank (peft's lora_alpha)
  // Suffixes of dotted module paths: "to_q" matches every attn1/attn2.to_q, "attn2.to_k" only cross-attention keys.
  std::vector<std::string> targets{"to_q", "to_k", "to_v", "to_out.0"};
  bool enabled() const { return rank > 0; }
  double scale() const { return alpha / static_cast<double>(rank); }
};

// `model.lora: {rank, alpha (default: rank), targets}` (strict keys).
LoraConfig read_lora_config(const config::Section& section);

// A Linear with torch::nn::Linear's parameter names ("weight", "bias") and initialisation, which can carry an
// adapter: "lora_A.weight" and "lora_B.weight" (peft's names). The UNet's attention projections are LoraLinear.
class LoraLinearImpl : public torch::nn::Module {
 public:
  explicit LoraLinearImpl(const torch::nn::LinearOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  // Registers lora_A / lora_B and returns them (the same modules, to be registered in the adapter tree too).
  std::pair<torch::nn::Linear, torch::nn::Linear> add_adapter(int64_t rank, double scale);
  bool has_adapter() const { return !lora_A.is_empty(); }
  int64_t in_features() const { return weight.size(1); }
  int64_t out_features() const { return weight.size(0); }

 private:
  torch::Tensor weight, bias;
  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
  double scale_ = 0;
};
TORCH_MODULE(LoraLinear);

// Whether adapters contribute on this thread (true unless an AdaptersDisabled is alive). Activation checkpointing
// records it at forward and restores it while recomputing, so a checkpointed reference pass stays LoRA-free.
bool adapters_active();
void set_adapters_active(bool active);

class AdaptersDisabled {
 public:
  AdaptersDisabled() : previous_(adapters_active()) { set_adapters_active(false); }
  ~AdaptersDisabled() { set_adapters_active(previous_); }
  AdaptersDisabled(const AdaptersDisabled&) = delete;
  AdaptersDisabled& operator=(const AdaptersDisabled&) = delete;

 private:
  bool previous_;
};

// Adds an adapter to every LoraLinear of `network` whose path matches a target, freezes every other parameter of
// `network`, and returns a module that holds exactly the adapters, named `<path>.lora_A.weight` /
// `<path>.lora_B.weight` (peft's names without the "unet." prefix). A target that matches nothing is an error.
std::shared_ptr<torch::nn::Module> attach_lora(torch::nn::Module& network, const LoraConfig& config);

// Trainable parameters attach_lora would add to a UNet of this config, computed from the config alone (no
// weights are allocated): what `dualign plan` budgets.
int64_t lora_parameter_count(const UNetConfig& unet, const LoraConfig& config);

// The adapters as diffusers' load_lora_weights reads them: "unet.<path>.lora_A.weight" and "unet.<path>.lora_B.weight",
// float32, with alpha/rank folded into lora_B (peft then loads them with lora_alpha = rank, scale 1).
// `adapters` are attach_lora's named parameters (state_dict(module) or a checkpoint's model/ema group).
TensorMap lora_state_for_diffusers(const TensorMap& adapters, const LoraConfig& config);
// Writes <dir>/pytorch_lora_weights.safetensors (diffusers' default LoRA file name).
void save_lora_weights(const TensorMap& adapters, const LoraConfig& config, const std::string& dir);

}  // namespace dualign::models
