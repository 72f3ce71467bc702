// UNet2DConditionModel: diffusers' architecture and parameter names (load diffusers safetensors unchanged).
#pragma once
#include <torch/torch.h>

#include <optional>

#include "models/unet_blocks.h"
#include "models/unet_config.h"

namespace dualign::models {

class UNet2DConditionModelImpl : public torch::nn::Module {
 public:
  explicit UNet2DConditionModelImpl(UNetConfig config);

  // sample [B, C, H, W]; timesteps [B] or [] (int or float); encoder_hidden_states [B, S, cross_dim]
  // (required when the model has cross-attention blocks); class_labels [B] (required if class-conditional).
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timesteps,
                        const torch::Tensor& encoder_hidden_states = {}, const torch::Tensor& class_labels = {});

  const UNetConfig& config() const { return config_; }
  // Recompute each resnet / transformer in backward instead of storing its activations.
  void set_gradient_checkpointing(bool on) { context_.checkpoint = on; }
  bool gradient_checkpointing() const { return context_.checkpoint; }
  int64_t num_parameters() const;
  bool has_cross_attention() const;

 private:
  UNetConfig config_;
  BlockContext context_;
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::Embedding class_embedding_table{nullptr};
  torch::nn::ModuleList down_blocks{nullptr}, up_blocks{nullptr};
  MidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(UNet2DConditionModel);

}  // namespace dualign::models
