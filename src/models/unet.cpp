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

// The blocks as diffusers' UNet2DConditionModel.__init__ lays them out: per-down-block lists (heads, cross-attention
// width, transformer depth) index the down blocks directly, the up blocks in reverse, the mid block by the last.
BlockSpec block_spec(const UNetConfig& c, size_t list_index) {
  BlockSpec s;
  s.temb = c.time_embed_dim();
  s.layers = c.layers_per_block;
  s.groups = c.norm_num_groups;
  s.eps = c.norm_eps;
  s.heads = c.heads(list_index);
  s.cross_dim = c.cross_dim(list_index);
  s.transformer_layers = c.transformer_layers(list_index);
  s.linear_projection = c.use_linear_projection;
  return s;
}

BlockSpec down_block_spec(const UNetConfig& c, size_t i) {
  const auto& boc = c.block_out_channels;
  BlockSpec s = block_spec(c, i);
  s.in = boc[i == 0 ? 0 : i - 1];
  s.out = boc[i];
  s.attention = c.down_block_types[i] == "CrossAttnDownBlock2D";
  s.resample = i + 1 < boc.size();
  s.downsample_padding = c.downsample_padding;
  return s;
}

BlockSpec mid_block_spec(const UNetConfig& c) {
  const size_t n = c.block_out_channels.size();
  BlockSpec s = block_spec(c, n - 1);
  s.in = s.out = c.block_out_channels.back();
  s.layers = 1;
  s.attention = c.mid_block_type == "UNetMidBlock2DCrossAttn";
  return s;
}

BlockSpec up_block_spec(const UNetConfig& c, size_t i) {
  const auto& boc = c.block_out_channels;
  const size_t n = boc.size(), r = n - 1 - i;  // r: index into the per-down-block lists, reversed
  BlockSpec s = block_spec(c, r);
  s.prev_out = boc[i == 0 ? n - 1 : r + 1];
  s.out = boc[r];
  s.in = boc[r == 0 ? 0 : r - 1];
  s.layers = c.layers_per_block + 1;
  s.attention = c.up_block_types[i] == "CrossAttnUpBlock2D";
  s.resample = i + 1 < n;
  return s;
}

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
  if (config_.text_time_conditional())  // add_time_proj (Timesteps) has no parameters
    register_module("add_embedding", TimestepEmbedding(*config_.projection_class_embeddings_input_dim, temb));

  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  for (size_t i = 0; i < n; ++i) down_blocks->push_back(DownBlock(down_block_spec(config_, i)));
  if (!config_.mid_block_type.empty())
    mid_block = register_module("mid_block", MidBlock(mid_block_spec(config_), config_.mid_block_scale_factor));
  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  for (size_t i = 0; i < n; ++i) up_blocks->push_back(UpBlock(up_block_spec(config_, i)));

  conv_norm_out = register_module(
      "conv_norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(config_.norm_num_groups, boc[0]).eps(config_.norm_eps)));
  conv_out = register_module("conv_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(boc[0], config_.out_channels, 3).padding(1)));
}

int64_t unet_parameter_count(const UNetConfig& c) {
  c.validate();
  const auto& boc = c.block_out_channels;
  const int64_t temb = c.time_embed_dim();
  auto linear = [](int64_t in, int64_t out) { return in * out + out; };
  auto timestep_embedding = [&](int64_t in) { return linear(in, temb) + linear(temb, temb); };
  int64_t total = 9 * c.in_channels * boc[0] + boc[0] + timestep_embedding(boc[0]);  // conv_in, time_embedding
  if (c.class_embed_type == "timestep") total += timestep_embedding(boc[0]);
  else if (c.num_class_embeds) total += *c.num_class_embeds * temb;
  if (c.text_time_conditional()) total += timestep_embedding(*c.projection_class_embeddings_input_dim);
  for (size_t i = 0; i < boc.size(); ++i)
    total += down_block_parameter_count(down_block_spec(c, i)) + up_block_parameter_count(up_block_spec(c, i));
  if (!c.mid_block_type.empty()) total += mid_block_parameter_count(mid_block_spec(c));
  return total + 2 * boc[0] + 9 * boc[0] * c.out_channels + c.out_channels;  // conv_norm_out, conv_out
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

torch::Tensor UNet2DConditionModelImpl::added_time_embedding(const torch::Tensor& text_embeds,
                                                             const torch::Tensor& time_ids, const torch::Tensor& emb) {
  const int64_t batch = emb.size(0), width = config_.addition_time_embed_dim;
  const int64_t expected = *config_.projection_class_embeddings_input_dim;
  DUALIGN_CHECK(text_embeds.defined() && time_ids.defined(),
                "UNet: addition_embed_type text_time (SDXL) needs the pooled text embedding text_embeds [B, D] and "
                "time_ids [B, K]; missing: {}{}", text_embeds.defined() ? "" : "text_embeds ",
                time_ids.defined() ? "" : "time_ids");
  DUALIGN_CHECK(text_embeds.dim() == 2 && text_embeds.size(0) == batch && time_ids.dim() == 2 &&
                    time_ids.size(0) == batch && text_embeds.size(1) + time_ids.size(1) * width == expected,
                "UNet: text_embeds {} and time_ids {} must be [{}, D] and [{}, K] with D + K * {} "
                "(addition_time_embed_dim) = {} (projection_class_embeddings_input_dim)",
                c10::str(text_embeds.sizes()), c10::str(time_ids.sizes()), batch, batch, width, expected);
  auto time_embeds = sinusoidal_embedding(time_ids.to(emb.device()).flatten(), width, config_.flip_sin_to_cos,
                                          config_.freq_shift)
                         .reshape({batch, -1});
  auto add_embeds = torch::cat({text_embeds.to(emb.device()), time_embeds}, -1).to(emb.scalar_type());
  return named_children()["add_embedding"]->as<TimestepEmbeddingImpl>()->forward(add_embeds);
}

torch::Tensor UNet2DConditionModelImpl::forward(const torch::Tensor& sample_in, const torch::Tensor& timesteps,
                                                const torch::Tensor& context, const torch::Tensor& class_labels,
                                                const torch::Tensor& text_embeds, const torch::Tensor& time_ids) {
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

  if (config_.text_time_conditional()) emb = emb + added_time_embedding(text_embeds, time_ids, emb);

  auto h = conv_in(sample);
  std::vector<torch::Tensor> skips{h};
  for (auto& block : *down_blocks) h = block->as<DownBlock>()->forward(h, emb, context, skips, context_);
  if (mid_block) h = mid_block->forward(h, emb, context, context_);
  for (auto& block : *up_blocks) h = block->as<UpBlock>()->forward(h, emb, context, skips, context_);
  return conv_out(torch::silu(conv_norm_out(h)));
}

}  // namespace dualign::models
