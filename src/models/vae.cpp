#include "models/vae.h"

#include <filesystem>

#include "models/checkpoint.h"
#include "models/diffusers_io.h"
#include "models/linear.h"
#include "util/error.h"

namespace dualign::models {
namespace {

constexpr double kEps = 1e-6;  // every norm of diffusers' VAE

torch::Tensor run_block(VaeBlock& block, const torch::Tensor& x, bool checkpoint_on) {
  if (!checkpoint_on) return block->forward(x);
  auto fn = [m = block.ptr()](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{m->forward(in[0])}; };
  return checkpoint(fn, {x}, block->parameters())[0];
}

// b's first `extent` rows (dim 2) or columns (dim 3) faded in from a's last ones: diffusers' blend_v / blend_h,
// written without in-place writes so autograd sees one expression.
torch::Tensor blend(const torch::Tensor& a, const torch::Tensor& b, int64_t extent, int64_t dim) {
  extent = std::min({a.size(dim), b.size(dim), extent});
  if (extent <= 0) return b;
  std::vector<int64_t> shape(4, 1);
  shape[static_cast<size_t>(dim)] = extent;
  auto w = (torch::arange(extent, b.options()) / static_cast<double>(extent)).view(shape);
  auto head = a.narrow(dim, a.size(dim) - extent, extent) * (1 - w) + b.narrow(dim, 0, extent) * w;
  return torch::cat({head, b.narrow(dim, extent, b.size(dim) - extent)}, dim);
}

}  // namespace

VaeAttentionImpl::VaeAttentionImpl(int64_t channels, int64_t groups) {
  group_norm = register_module("group_norm", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(kEps)));
  to_q = register_module("to_q", torch::nn::Linear(channels, channels));
  to_k = register_module("to_k", torch::nn::Linear(channels, channels));
  to_v = register_module("to_v", torch::nn::Linear(channels, channels));
  to_out = register_module("to_out", torch::nn::ModuleList(torch::nn::Linear(channels, channels), torch::nn::Dropout(0.0)));
}

torch::Tensor VaeAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto tokens = group_norm(x.view({b, c, h * w})).transpose(1, 2);  // [B, HW, C]
  auto head = [&](const torch::nn::Linear& proj) { return linear(proj, tokens).unsqueeze(1); };  // one head
  auto q = head(to_q), k = head(to_k), v = head(to_v);
  auto o = at::scaled_dot_product_attention(q, k, v).squeeze(1);
  o = linear(torch::nn::Linear(to_out->ptr<torch::nn::LinearImpl>(0)), o);
  return o.transpose(1, 2).reshape({b, c, h, w}) + x;
}

VaeBlockImpl::VaeBlockImpl(Kind kind, int64_t in, int64_t out, int64_t layers, int64_t groups, bool resample,
                           bool attention) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (kind == Kind::mid) {
    resnets->push_back(ResnetBlock2D(in, in, 0, groups, kEps));
    if (attention) attentions = register_module("attentions", torch::nn::ModuleList(VaeAttention(in, groups)));
    resnets->push_back(ResnetBlock2D(in, in, 0, groups, kEps));
    return;
  }
  for (int64_t i = 0; i < layers; ++i) resnets->push_back(ResnetBlock2D(i == 0 ? in : out, out, 0, groups, kEps));
  if (resample && kind == Kind::down)
    downsamplers = register_module("downsamplers", torch::nn::ModuleList(Downsample2D(out, 0)));
  if (resample && kind == Kind::up) upsamplers = register_module("upsamplers", torch::nn::ModuleList(Upsample2D(out)));
}

torch::Tensor VaeBlockImpl::forward(torch::Tensor x) {
  for (size_t i = 0; i < resnets->size(); ++i) {
    x = resnets[i]->as<ResnetBlock2D>()->forward(x, {});
    if (attentions && i == 0) x = attentions[0]->as<VaeAttention>()->forward(x);  // mid: resnet, attention, resnet
  }
  if (downsamplers) x = downsamplers[0]->as<Downsample2D>()->forward(x);
  if (upsamplers) x = upsamplers[0]->as<Upsample2D>()->forward(x);
  return x;
}

VaeCoderImpl::VaeCoderImpl(const VaeConfig& c, bool encoder) : encoder_(encoder) {
  const auto& ch = c.block_out_channels;
  const auto n = static_cast<int64_t>(ch.size());
  const int64_t groups = c.norm_num_groups;
  auto conv = [](int64_t i, int64_t o) { return torch::nn::Conv2d(torch::nn::Conv2dOptions(i, o, 3).padding(1)); };
  auto mid = [&] { return VaeBlock(VaeBlockImpl::Kind::mid, ch.back(), ch.back(), 1, groups, false, c.mid_block_add_attention); };
  if (encoder) {
    conv_in = register_module("conv_in", conv(c.in_channels, ch.front()));
    down_blocks = register_module("down_blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < n; ++i)
      down_blocks->push_back(VaeBlock(VaeBlockImpl::Kind::down, i == 0 ? ch[0] : ch[i - 1], ch[i], c.layers_per_block,
                                      groups, i + 1 < n, false));
    mid_block = register_module("mid_block", mid());
    conv_norm_out = register_module("conv_norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, ch.back()).eps(kEps)));
    conv_out = register_module("conv_out", conv(ch.back(), 2 * c.latent_channels));
  } else {
    conv_in = register_module("conv_in", conv(c.latent_channels, ch.back()));
    mid_block = register_module("mid_block", mid());
    up_blocks = register_module("up_blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < n; ++i) {
      // block i maps reversed(ch)[i − 1] (ch.back() for the first) to reversed(ch)[i]
      const int64_t in = ch[static_cast<size_t>(n - std::max<int64_t>(i, 1))], out = ch[static_cast<size_t>(n - 1 - i)];
      up_blocks->push_back(VaeBlock(VaeBlockImpl::Kind::up, in, out, c.layers_per_block + 1, groups, i + 1 < n, false));
    }
    conv_norm_out = register_module("conv_norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, ch.front()).eps(kEps)));
    conv_out = register_module("conv_out", conv(ch.front(), c.out_channels));
  }
}

torch::Tensor VaeCoderImpl::forward(const torch::Tensor& x, bool checkpoint_on) {
  const bool ckpt = checkpoint_on && torch::GradMode::is_enabled();
  auto h = conv_in(x);
  if (encoder_) {
    for (auto& m : *down_blocks) {
      VaeBlock block(std::dynamic_pointer_cast<VaeBlockImpl>(m));
      h = run_block(block, h, ckpt);
    }
    h = run_block(mid_block, h, ckpt);
  } else {
    h = run_block(mid_block, h, ckpt);
    for (auto& m : *up_blocks) {
      VaeBlock block(std::dynamic_pointer_cast<VaeBlockImpl>(m));
      h = run_block(block, h, ckpt);
    }
  }
  return conv_out(torch::silu(conv_norm_out(h)));
}

AutoencoderKLImpl::AutoencoderKLImpl(VaeConfig config) : config_(std::move(config)) {
  config_.validate("AutoencoderKL config");
  encoder = register_module("encoder", VaeCoder(config_, true));
  decoder = register_module("decoder", VaeCoder(config_, false));
  const int64_t lc = config_.latent_channels;
  if (config_.use_quant_conv) quant_conv = register_module("quant_conv", torch::nn::Conv2d(2 * lc, 2 * lc, 1));
  if (config_.use_post_quant_conv) post_quant_conv = register_module("post_quant_conv", torch::nn::Conv2d(lc, lc, 1));
}

AutoencoderKLImpl::Posterior AutoencoderKLImpl::encode(const torch::Tensor& images) {
  DUALIGN_CHECK(images.dim() == 4 && images.size(1) == config_.in_channels,
                "AutoencoderKL.encode: expected images [B, {}, H, W], got {}", config_.in_channels, c10::str(images.sizes()));
  auto encode_batch = [&](const torch::Tensor& x) {
    auto moments = encoder->forward(x, checkpoint_);
    return quant_conv ? quant_conv(moments) : moments;
  };
  torch::Tensor moments;
  if (slicing_ && images.size(0) > 1) {
    std::vector<torch::Tensor> parts;
    for (const auto& x : images.split(1)) parts.push_back(encode_batch(x));
    moments = torch::cat(parts);
  } else {
    moments = encode_batch(images);
  }
  auto chunks = moments.chunk(2, 1);
  return {chunks[0], chunks[1].clamp(-30.0, 20.0)};
}

torch::Tensor AutoencoderKLImpl::decode_one(const torch::Tensor& z) {
  const int64_t tile = config_.tile_latent_size();
  if (tiling_ && (z.size(2) > tile || z.size(3) > tile)) return tiled_decode(z);
  return decoder->forward(post_quant_conv ? post_quant_conv(z) : z, checkpoint_);
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& z) {
  DUALIGN_CHECK(z.dim() == 4 && z.size(1) == config_.latent_channels,
                "AutoencoderKL.decode: expected latents [B, {}, h, w], got {}", config_.latent_channels, c10::str(z.sizes()));
  if (!slicing_ || z.size(0) == 1) return decode_one(z);
  std::vector<torch::Tensor> parts;
  for (const auto& zi : z.split(1)) parts.push_back(decode_one(zi));
  return torch::cat(parts);
}

// diffusers' tiled_decode: tiles of tile_latent_size latents every 75 % of a tile, each decoded alone, then blended
// with the (already blended) tiles above and to the left and cropped to the stride.
torch::Tensor AutoencoderKLImpl::tiled_decode(const torch::Tensor& z) {
  const int64_t tile = config_.tile_latent_size();
  const auto stride = static_cast<int64_t>(static_cast<double>(tile) * 0.75);
  const auto blend_extent = static_cast<int64_t>(static_cast<double>(config_.sample_size) * 0.25);
  const int64_t keep = config_.sample_size - blend_extent;
  std::vector<std::vector<torch::Tensor>> tiles;
  for (int64_t i = 0; i < z.size(2); i += stride) {
    auto& row = tiles.emplace_back();
    for (int64_t j = 0; j < z.size(3); j += stride) {
      auto t = z.slice(2, i, i + tile).slice(3, j, j + tile);
      row.push_back(decoder->forward(post_quant_conv ? post_quant_conv(t) : t, checkpoint_));
    }
  }
  std::vector<torch::Tensor> rows;
  for (size_t i = 0; i < tiles.size(); ++i) {
    std::vector<torch::Tensor> cropped;
    for (size_t j = 0; j < tiles[i].size(); ++j) {
      auto& t = tiles[i][j];
      if (i > 0) t = blend(tiles[i - 1][j], t, blend_extent, 2);
      if (j > 0) t = blend(tiles[i][j - 1], t, blend_extent, 3);
      cropped.push_back(t.slice(2, 0, keep).slice(3, 0, keep));
    }
    rows.push_back(torch::cat(cropped, 3));
  }
  return torch::cat(rows, 2);
}

torch::Tensor AutoencoderKLImpl::latents_from_z(const torch::Tensor& z) const {
  return (config_.shift_factor ? z - *config_.shift_factor : z) * config_.scaling_factor;
}

torch::Tensor AutoencoderKLImpl::decode_latents(const torch::Tensor& latents) {
  auto z = latents / config_.scaling_factor;
  return decode(config_.shift_factor ? z + *config_.shift_factor : z);
}

AutoencoderKL load_diffusers_vae(const std::string& dir_in) {
  namespace fs = std::filesystem;
  fs::path dir(dir_in);
  if (!fs::exists(dir / "config.json") && fs::exists(dir / "vae" / "config.json")) dir /= "vae";
  const auto weights = dir / "diffusion_pytorch_model.safetensors";
  DUALIGN_CHECK(fs::exists(dir / "config.json"), "diffusers AutoencoderKL '{}': no config.json (nor vae/config.json)",
                dir_in);
  DUALIGN_CHECK(fs::exists(weights), "diffusers AutoencoderKL '{}': no diffusion_pytorch_model.safetensors", dir.string());
  AutoencoderKL vae(VaeConfig::from_file((dir / "config.json").string()));
  load_state_dict(*vae, load_safetensors(weights.string()), weights.string());
  return vae;
}

}  // namespace dualign::models
