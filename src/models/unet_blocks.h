// Building blocks of diffusers' UNet2DConditionModel, with diffusers' module (and so parameter) names:
// ResnetBlock2D, Attention, FeedForward(GEGLU), BasicTransformerBlock, Transformer2DModel, Downsample2D,
// Upsample2D and the down / mid / up blocks.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "models/linear.h"
#include "models/lora.h"

namespace dualign::models {

// Set per forward by the UNet: recompute resnets and transformers in backward instead of storing activations.
struct BlockContext {
  bool checkpoint = false;
};

class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  ResnetBlock2DImpl(int64_t in, int64_t out, int64_t temb_channels, int64_t groups, double eps,
                    double output_scale_factor = 1.0);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb);

 private:
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
  torch::nn::Linear time_emb_proj{nullptr};
  double output_scale_factor_;
};
TORCH_MODULE(ResnetBlock2D);

// diffusers' Attention with AttnProcessor2_0 (scaled_dot_product_attention). Optional group norm + residual
// connection as used by the deprecated attention blocks.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t query_dim, int64_t cross_dim, int64_t heads, int64_t dim_head, bool bias);
  // x [B, L, C]; context [B, S, Ccross] or undefined for self-attention
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {});

 private:
  int64_t heads_;
  LoraLinear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};  // Linear layers that can carry LoRA adapters (lora.h)
  torch::nn::ModuleList to_out{nullptr};  // [LoraLinear, Dropout]
};
TORCH_MODULE(Attention);

class GEGLUImpl : public torch::nn::Module {
 public:
  GEGLUImpl(int64_t dim_in, int64_t dim_out);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(GEGLU);

class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, int64_t mult = 4);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::ModuleList net{nullptr};  // [GEGLU, Dropout, Linear]
};
TORCH_MODULE(FeedForward);

class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t dim_head, int64_t cross_dim);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);

 private:
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  Attention attn1{nullptr}, attn2{nullptr};
  FeedForward ff{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

class Transformer2DModelImpl : public torch::nn::Module {
 public:
  Transformer2DModelImpl(int64_t heads, int64_t dim_head, int64_t in_channels, int64_t num_layers,
                         int64_t cross_dim, int64_t groups, bool use_linear_projection);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);

 private:
  bool linear_;
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d proj_in_conv_{nullptr}, proj_out_conv_{nullptr};  // registered as proj_in / proj_out: either
  torch::nn::Linear proj_in_linear_{nullptr}, proj_out_linear_{nullptr};  // 1x1 convolutions or linear layers
  torch::nn::ModuleList transformer_blocks{nullptr};
};
TORCH_MODULE(Transformer2DModel);

class Downsample2DImpl : public torch::nn::Module {
 public:
  Downsample2DImpl(int64_t channels, int64_t padding);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t padding_;
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Downsample2D);

class Upsample2DImpl : public torch::nn::Module {
 public:
  explicit Upsample2DImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

struct BlockSpec {
  int64_t in, out, prev_out = 0, temb, layers, groups, heads = 0, cross_dim = 0, transformer_layers = 1,
                                  downsample_padding = 1;
  double eps;
  bool attention = false, resample = false, linear_projection = false;
};

// CrossAttnDownBlock2D (spec.attention) or DownBlock2D. Returns the output and appends skip states.
class DownBlockImpl : public torch::nn::Module {
 public:
  explicit DownBlockImpl(const BlockSpec& spec);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                        std::vector<torch::Tensor>& skips, const BlockContext& bc);

 private:
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, downsamplers{nullptr};
};
TORCH_MODULE(DownBlock);

// CrossAttnUpBlock2D (spec.attention) or UpBlock2D. Consumes skip states from the back.
class UpBlockImpl : public torch::nn::Module {
 public:
  explicit UpBlockImpl(const BlockSpec& spec);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                        std::vector<torch::Tensor>& skips, const BlockContext& bc);
  int64_t num_resnets() const { return int64_t(resnets->size()); }

 private:
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, upsamplers{nullptr};
};
TORCH_MODULE(UpBlock);

// UNetMidBlock2DCrossAttn (spec.attention: resnet, [transformer, resnet] × layers) or UNetMidBlock2D as
// UNet2DConditionModel builds it (a single resnet, no attention).
class MidBlockImpl : public torch::nn::Module {
 public:
  MidBlockImpl(const BlockSpec& spec, double output_scale_factor);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                        const BlockContext& bc);

 private:
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr};
};
TORCH_MODULE(MidBlock);

// The parameters each block has, counted without building it (unet_parameter_count).
int64_t down_block_parameter_count(const BlockSpec& spec);
int64_t up_block_parameter_count(const BlockSpec& spec);
int64_t mid_block_parameter_count(const BlockSpec& spec);

// Run one resnet / transformer, checkpointed when bc.checkpoint and grad mode are on.
torch::Tensor run_resnet(ResnetBlock2D& r, const torch::Tensor& x, const torch::Tensor& temb, const BlockContext& bc);
torch::Tensor run_transformer(Transformer2DModel& t, const torch::Tensor& x, const torch::Tensor& context,
                              const BlockContext& bc);

}  // namespace dualign::models
