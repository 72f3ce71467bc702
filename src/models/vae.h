// AutoencoderKL, diffusers' architecture and parameter names: Stable Diffusion's `vae/` folder
// (config.json + diffusion_pytorch_model.safetensors) loads unchanged.
//   encoder: conv_in → DownEncoderBlock2D × n → mid (resnet, attention, resnet) → norm, SiLU, conv_out → quant_conv
//   decoder: post_quant_conv → conv_in → mid → UpDecoderBlock2D × n → norm, SiLU, conv_out
// Images are [B, C, H, W] in [-1, 1]; diffusion latents are scaling_factor · (z − shift_factor).
//
// Memory options for back-propagating through decode (reward gradients):
//   gradient checkpointing  recompute each mid / up / down block in backward (diffusers' granularity)
//   slicing                 decode one sample at a time (lower peak without gradients, and with checkpointing)
//   tiling                  decode overlapping latent tiles and blend them, exactly as diffusers' tiled_decode
//                           (tiles of config.sample_size pixels, 25 % overlap); output differs from an untiled
//                           decode at the seams, as in diffusers.
#pragma once
#include <torch/torch.h>

#include <string>

#include "models/unet_blocks.h"
#include "models/vae_config.h"

namespace dualign::models {

// The mid-block attention of the VAE (diffusers' Attention with group norm and a residual connection, one head).
class VaeAttentionImpl : public torch::nn::Module {
 public:
  VaeAttentionImpl(int64_t channels, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::GroupNorm group_norm{nullptr};
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};  // [Linear, Dropout]
};
TORCH_MODULE(VaeAttention);

// One stage of the encoder (resnets + optional downsampler), the decoder (resnets + optional upsampler) or the
// mid block (resnet, [attention, resnet]); which one is fixed at construction.
class VaeBlockImpl : public torch::nn::Module {
 public:
  enum class Kind { down, up, mid };
  VaeBlockImpl(Kind kind, int64_t in, int64_t out, int64_t layers, int64_t groups, bool resample, bool attention);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, downsamplers{nullptr}, upsamplers{nullptr};
};
TORCH_MODULE(VaeBlock);

class VaeCoderImpl : public torch::nn::Module {
 public:
  // encoder: true builds Encoder (images → 2·latent moments), false builds Decoder (latents → images).
  VaeCoderImpl(const VaeConfig& c, bool encoder);
  torch::Tensor forward(const torch::Tensor& x, bool checkpoint);

 private:
  bool encoder_;
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks{nullptr}, up_blocks{nullptr};
  VaeBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VaeCoder);

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(VaeConfig config);

  // The diagonal Gaussian posterior q(z | x): mean and log-variance (clamped to [−30, 20] like diffusers).
  struct Posterior {
    torch::Tensor mean, logvar;
    torch::Tensor std() const { return torch::exp(0.5 * logvar); }
    torch::Tensor sample(const torch::Tensor& standard_normal) const { return mean + std() * standard_normal; }
  };
  Posterior encode(const torch::Tensor& images);
  torch::Tensor decode(const torch::Tensor& z);  // unscaled z → images in about [-1, 1]

  // Diffusion latents ↔ images with scaling_factor and shift_factor applied.
  torch::Tensor latents_from_z(const torch::Tensor& z) const;
  torch::Tensor decode_latents(const torch::Tensor& latents);

  const VaeConfig& config() const { return config_; }
  void set_gradient_checkpointing(bool on) { checkpoint_ = on; }
  void set_slicing(bool on) { slicing_ = on; }
  void set_tiling(bool on) { tiling_ = on; }
  bool gradient_checkpointing() const { return checkpoint_; }

 private:
  torch::Tensor decode_one(const torch::Tensor& z);  // post_quant_conv + decoder
  torch::Tensor tiled_decode(const torch::Tensor& z);

  VaeConfig config_;
  bool checkpoint_ = false, slicing_ = false, tiling_ = false;
  VaeCoder encoder{nullptr}, decoder{nullptr};
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};
};
TORCH_MODULE(AutoencoderKL);

// <dir>/config.json + <dir>/diffusion_pytorch_model.safetensors, or a pipeline root with a vae/ folder. Names and
// shapes are checked strictly.
AutoencoderKL load_diffusers_vae(const std::string& dir);

}  // namespace dualign::models
