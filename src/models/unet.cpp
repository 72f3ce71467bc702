#include "models/unet.h"

#include "models/mlp_score.h"
#include "util/error.h"

namespace dualign::models {
namespace {

// diffusers' TimestepEmbedding: linear_1 → SiLU → linear_2, registered under `name`.
struct TimestepEmbeddingImpl : torch::nn::Module {
  TimestepEmbeddingImpl(int64_t in, int64_t out) {
    linear_1 = register_module("linear_1", torch::nn::Linear(in, out));
    linear_2 = register_module("linear_2", torch::nn::Linear(out, out));
  }
  torch::Tensor forward(const torch::Tensor& x) { return linear(linear_2, torch::silu(linear(linear_1, x))); }
  torch::nn::Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

}  // namespace

UNet2DConditionModelImpl::UNet2DConditionModelImpl(UNetConfig c) : config_(std::move(c)) {
  config_.validate();
  const auto& boc = config_.block_out_channels;
  const size_t n = boc.size();
  const int64_t temb = config_.time_embed_dim();
  conv_in = register_module("conv_in", torch::nn::Conv2d(torch::nn::Conv2dOptions(config_.in_channels, boc[0], 3).padding(1)));
  register_module("time_embedding", TimestepEmbedding(boc[0], temb));
  if (config_.class_embed_type == "timestep") {
    register_module("class_embedding", TimestepEmbedding(boc[0], temb));
  } else if (config_.num_class_embeds) {
    class_embedding_table = register_module("class_embedding", torch::nn::Embedding(*config_.num_class_embeds, temb));
  }

  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  int64_t out_ch = boc[0];
  for (size_t i = 0; i < n; ++i) {
    BlockSpec s;
    s.in = out_ch;
    s.out = out_ch = boc[i];
    s.temb = temb;
    s.layers = config_.layers_per_block;
    s.groups = config_.norm_num_groups;
    s.eps = config_.norm_eps;
    s.attention = config_.down_block_types[i] == "CrossAttnDownBlock2D";
    s.heads = config_.heads(i);
    s.cross_dim = config_.cross_dim(i);
    s.transformer_layers = config_.transformer_layers(i);
    s.resample = i + 1 < n;
    s.downsample_padding = config_.downsample_padding;
    s.linear_projection = config_.use_linear_projection;
    down_blocks->push_back(DownBlock(s));
  }

  if (!config_.mid_block_type.empty()) {
    BlockSpec s;
    s.in = s.out = boc.back();
    s.temb = temb;
    s.layers = 1;
    s.groups = config_.norm_num_groups;
    s.eps = config_.norm_eps;
    s.attention = config_.mid_block_type == "UNetMidBlock2DCrossAttn";
    s.heads = config_.heads(n - 1);
    s.cross_dim = config_.cross_dim(n - 1);
    s.transformer_layers = config_.transformer_layers(n - 1);
    s.linear_projection = config_.use_linear_projection;
    mid_block = register_module("mid_block", MidBlock(s, config_.mid_block_scale_factor));
  }

  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  out_ch = boc[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const size_t r = n - 1 - i;  // index into the per-down-block lists, reversed
    BlockSpec s;
    s.prev_out = out_ch;
    s.out = out_ch = boc[r];
    s.in = boc[r == 0 ? 0 : r - 1];
    s.temb = temb;
    s.layers = config_.layers_per_block + 1;
    s.groups = config_.norm_num_groups;
    s.eps = config_.norm_eps;
    s.attention = config_.up_block_types[i] == "CrossAttnUpBlock2D";
    s.heads = config_.heads(r);
    s.cross_dim = config_.cross_dim(r);
    s.transformer_layers = config_.transformer_layers(r);
    s.resample = i + 1 < n;
    s.linear_projection = config_.use_linear_projection;
    up_blocks->push_back(UpBlock(s));
  }

  conv_norm_out = register_module(
      "conv_norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(config_.norm_num_groups, boc[0]).eps(config_.norm_eps)));
  conv_out = register_module("conv_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(boc[0], config_.out_channels, 3).padding(1)));
}

bool UNet2DConditionModelImpl::has_cross_attention() const {
  for (const auto& t : config_.down_block_types) if (t == "CrossAttnDownBlock2D") return true;
  for (const auto& t : config_.up_block_types) if (t == "CrossAttnUpBlock2D") return true;
  return config_.mid_block_type == "UNetMidBlock2DCrossAttn";
}

int64_t UNet2DConditionModelImpl::num_parameters() const {
  int64_t count = 0;
  for (const auto& p : parameters()) count += p.numel();
  return count;
}

torch::Tensor UNet2DConditionModelImpl::forward(const torch::Tensor& sample_in, const torch::Tensor& timesteps,
                                                const torch::Tensor& context, const torch::Tensor& class_labels) {
  DUALIGN_CHECK(sample_in.dim() == 4 && sample_in.size(1) == config_.in_channels,
                "UNet: sample must be [B, {}, H, W], got {}", config_.in_channels, c10::str(sample_in.sizes()));
  const int64_t factor = int64_t(1) << (config_.block_out_channels.size() - 1);
  DUALIGN_CHECK(sample_in.size(2) % factor == 0 && sample_in.size(3) % factor == 0,
                "UNet: H and W must be multiples of {}, got {}", factor, c10::str(sample_in.sizes()));
  DUALIGN_CHECK(!has_cross_attention() || context.defined(),
                "UNet: this config has cross-attention; encoder_hidden_states are required");
  const int64_t batch = sample_in.size(0);
  auto sample = config_.center_input_sample ? 2 * sample_in - 1.0 : sample_in;

  auto t = timesteps.dim() == 0 ? timesteps.reshape({1}) : timesteps;
  t = t.to(sample.device()).expand({batch});
  auto time_embedding = named_children()["time_embedding"]->as<TimestepEmbeddingImpl>();
  auto t_emb = sinusoidal_embedding(t, config_.block_out_channels[0], config_.flip_sin_to_cos, config_.freq_shift)
                   .to(sample.scalar_type());
  auto emb = time_embedding->forward(t_emb);
  if (config_.class_conditional()) {
    DUALIGN_CHECK(class_labels.defined(), "UNet: class_labels are required for a class-conditional model");
    if (config_.class_embed_type == "timestep") {
      auto class_embedding = named_children()["class_embedding"]->as<TimestepEmbeddingImpl>();
      auto proj = sinusoidal_embedding(class_labels.to(sample.device()), config_.block_out_channels[0],
                                       config_.flip_sin_to_cos, config_.freq_shift);
      emb = emb + class_embedding->forward(proj.to(sample.scalar_type())).to(sample.scalar_type());
    } else {
      emb = emb + class_embedding_table(class_labels.to(sample.device()).to(torch::kInt64)).to(sample.scalar_type());
    }
  }

  auto h = conv_in(sample);
  std::vector<torch::Tensor> skips{h};
  for (auto& block : *down_blocks) h = block->as<DownBlock>()->forward(h, emb, context, skips, context_);
  if (mid_block) h = mid_block->forward(h, emb, context, context_);
  for (auto& block : *up_blocks) h = block->as<UpBlock>()->forward(h, emb, context, skips, context_);
  return conv_out(torch::silu(conv_norm_out(h)));
}

}  // namespace dualign::models
