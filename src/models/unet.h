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
  // (required when the model has cross-attention blocks); class_labels [B] (required if class-conditional);
  // text_embeds [B, D] and time_ids [B, K] (required with addition_embed_type text_time: SDXL's pooled text
  // embedding and its size / crop time ids, diffusers' added_cond_kwargs).
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timesteps,
                        const torch::Tensor& encoder_hidden_states = {}, const torch::Tensor& class_labels = {},
                        const torch::Tensor& text_embeds = {}, const torch::Tensor& time_ids = {});

  const UNetConfig& config() const { return config_; }
  // Recompute each resnet / transformer in backward instead of storing its activations.
  void set_gradient_checkpointing(bool on) { context_.checkpoint = on; }
  bool gradient_checkpointing() const { return context_.checkpoint; }
  int64_t num_parameters() const;
  bool has_cross_attention() const;

 private:
  // diffusers' get_aug_embed for text_time: add_embedding(cat(text_embeds, add_time_proj(time_ids))).
  torch::Tensor added_time_embedding(const torch::Tensor& text_embeds, const torch::Tensor& time_ids,
                                     const torch::Tensor& emb);

  UNetConfig config_;
  BlockContext context_;
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::Embedding class_embedding_table{nullptr};
  torch::nn::ModuleList down_blocks{nullptr}, up_blocks{nullptr};
  MidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(UNet2DConditionModel);

// The number of parameters UNet2DConditionModel(config) has, counted from the config without building it (SDXL's
// 2.6B fp32 weights are 10 GB). Tests check it against built models.
int64_t unet_parameter_count(const UNetConfig& config);

}  // namespace dualign::models
