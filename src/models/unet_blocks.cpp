#include "models/unet_blocks.h"

#include "models/checkpoint.h"
#include "util/error.h"

namespace dualign::models {

namespace F = torch::nn::functional;

ResnetBlock2DImpl::ResnetBlock2DImpl(int64_t in, int64_t out, int64_t temb_channels, int64_t groups, double eps,
                                     double output_scale_factor)
    : output_scale_factor_(output_scale_factor) {
  norm1 = register_module("norm1", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, in).eps(eps)));
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)));
  if (temb_channels > 0) time_emb_proj = register_module("time_emb_proj", torch::nn::Linear(temb_channels, out));
  norm2 = register_module("norm2", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, out).eps(eps)));
  conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1)));
  if (in != out) conv_shortcut = register_module("conv_shortcut", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)));
}

torch::Tensor ResnetBlock2DImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  auto h = conv1(torch::silu(norm1(x)));
  if (time_emb_proj && temb.defined()) h = h + linear(time_emb_proj, torch::silu(temb)).unsqueeze(-1).unsqueeze(-1);
  h = conv2(torch::silu(norm2(h)));
  auto shortcut = conv_shortcut ? conv_shortcut(x) : x;
  auto out = shortcut + h;
  return output_scale_factor_ == 1.0 ? out : out / output_scale_factor_;
}

AttentionImpl::AttentionImpl(int64_t query_dim, int64_t cross_dim, int64_t heads, int64_t dim_head, bool bias)
    : heads_(heads) {
  const int64_t inner = heads * dim_head;
  const int64_t kv_dim = cross_dim > 0 ? cross_dim : query_dim;
  to_q = register_module("to_q", LoraLinear(torch::nn::LinearOptions(query_dim, inner).bias(bias)));
  to_k = register_module("to_k", LoraLinear(torch::nn::LinearOptions(kv_dim, inner).bias(bias)));
  to_v = register_module("to_v", LoraLinear(torch::nn::LinearOptions(kv_dim, inner).bias(bias)));
  to_out = register_module("to_out", torch::nn::ModuleList(LoraLinear(torch::nn::LinearOptions(inner, query_dim)),
                                                           torch::nn::Dropout(0.0)));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const auto& kv = context.defined() ? context : x;
  const int64_t b = x.size(0), l = x.size(1);
  auto split = [&](const torch::Tensor& t) { return t.view({b, t.size(1), heads_, -1}).transpose(1, 2); };
  auto q = split(to_q(x)), k = split(to_k(kv)), v = split(to_v(kv));  // LoraLinear: aten::linear, as linear()
  auto o = at::scaled_dot_product_attention(q, k, v);
  o = o.transpose(1, 2).reshape({b, l, -1});
  return to_out[0]->as<LoraLinear>()->forward(o);
}

GEGLUImpl::GEGLUImpl(int64_t dim_in, int64_t dim_out) {
  proj = register_module("proj", torch::nn::Linear(dim_in, dim_out * 2));
}

torch::Tensor GEGLUImpl::forward(const torch::Tensor& x) {
  auto parts = linear(proj, x).chunk(2, -1);
  return parts[0] * torch::gelu(parts[1]);
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t mult) {
  net = register_module("net", torch::nn::ModuleList(GEGLU(dim, dim * mult), torch::nn::Dropout(0.0),
                                                      torch::nn::Linear(dim * mult, dim)));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  return linear(torch::nn::Linear(net->ptr<torch::nn::LinearImpl>(2)), net[0]->as<GEGLU>()->forward(x));
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t dim_head, int64_t cross_dim) {
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)); };
  norm1 = register_module("norm1", ln());
  attn1 = register_module("attn1", Attention(dim, 0, heads, dim_head, false));
  norm2 = register_module("norm2", ln());
  attn2 = register_module("attn2", Attention(dim, cross_dim, heads, dim_head, false));
  norm3 = register_module("norm3", ln());
  ff = register_module("ff", FeedForward(dim));
}

torch::Tensor BasicTransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  auto h = attn1(norm1(x)) + x;
  h = attn2(norm2(h), context) + h;
  return ff(norm3(h)) + h;
}

Transformer2DModelImpl::Transformer2DModelImpl(int64_t heads, int64_t dim_head, int64_t in_channels,
                                               int64_t num_layers, int64_t cross_dim, int64_t groups,
                                               bool use_linear_projection)
    : linear_(use_linear_projection) {
  const int64_t inner = heads * dim_head;
  norm = register_module("norm", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, in_channels).eps(1e-6)));
  if (linear_) {
    proj_in_linear_ = register_module("proj_in", torch::nn::Linear(in_channels, inner));
  } else {
    proj_in_conv_ = register_module("proj_in", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, inner, 1)));
  }
  transformer_blocks = register_module("transformer_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i)
    transformer_blocks->push_back(BasicTransformerBlock(inner, heads, dim_head, cross_dim));
  if (linear_) {
    proj_out_linear_ = register_module("proj_out", torch::nn::Linear(inner, in_channels));
  } else {
    proj_out_conv_ = register_module("proj_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(inner, in_channels, 1)));
  }
}

torch::Tensor Transformer2DModelImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const int64_t b = x.size(0), hgt = x.size(2), wid = x.size(3);
  auto h = norm(x);
  auto to_tokens = [&](const torch::Tensor& t) { return t.permute({0, 2, 3, 1}).reshape({b, hgt * wid, t.size(1)}); };
  auto to_image = [&](const torch::Tensor& t) {
    return t.reshape({b, hgt, wid, t.size(2)}).permute({0, 3, 1, 2}).contiguous();
  };
  h = linear_ ? linear(proj_in_linear_, to_tokens(h)) : to_tokens(proj_in_conv_(h));
  for (auto& block : *transformer_blocks) h = block->as<BasicTransformerBlock>()->forward(h, context);
  h = linear_ ? to_image(linear(proj_out_linear_, h)) : proj_out_conv_(to_image(h));
  return h + x;
}

Downsample2DImpl::Downsample2DImpl(int64_t channels, int64_t padding) : padding_(padding) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 3).stride(2).padding(padding)));
}

torch::Tensor Downsample2DImpl::forward(const torch::Tensor& x) {
  if (padding_ == 0) return conv(F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));
  return conv(x);
}

Upsample2DImpl::Upsample2DImpl(int64_t channels) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 3).padding(1)));
}

torch::Tensor Upsample2DImpl::forward(const torch::Tensor& x) {
  auto up = F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
  return conv(up);
}

torch::Tensor run_resnet(ResnetBlock2D& r, const torch::Tensor& x, const torch::Tensor& temb, const BlockContext& bc) {
  if (!bc.checkpoint) return r->forward(x, temb);
  auto fn = [m = r.ptr()](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{m->forward(in[0], in[1])}; };
  return checkpoint(fn, {x, temb}, r->parameters())[0];
}

torch::Tensor run_transformer(Transformer2DModel& t, const torch::Tensor& x, const torch::Tensor& context,
                              const BlockContext& bc) {
  if (!bc.checkpoint) return t->forward(x, context);
  auto fn = [m = t.ptr()](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{m->forward(in[0], in[1])}; };
  return checkpoint(fn, {x, context}, t->parameters())[0];
}

DownBlockImpl::DownBlockImpl(const BlockSpec& s) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (s.attention) attentions = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < s.layers; ++i) {
    resnets->push_back(ResnetBlock2D(i == 0 ? s.in : s.out, s.out, s.temb, s.groups, s.eps));
    if (s.attention)
      attentions->push_back(Transformer2DModel(s.heads, s.out / s.heads, s.out, s.transformer_layers, s.cross_dim,
                                               s.groups, s.linear_projection));
  }
  if (s.resample) downsamplers = register_module("downsamplers", torch::nn::ModuleList(Downsample2D(s.out, s.downsample_padding)));
}

torch::Tensor DownBlockImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                                     std::vector<torch::Tensor>& skips, const BlockContext& bc) {
  for (size_t i = 0; i < resnets->size(); ++i) {
    ResnetBlock2D rh(std::dynamic_pointer_cast<ResnetBlock2DImpl>(resnets->ptr(i)));
    x = run_resnet(rh, x, temb, bc);
    if (attentions) {
      Transformer2DModel th(std::dynamic_pointer_cast<Transformer2DModelImpl>(attentions->ptr(i)));
      x = run_transformer(th, x, context, bc);
    }
    skips.push_back(x);
  }
  if (downsamplers) {
    x = downsamplers[0]->as<Downsample2D>()->forward(x);
    skips.push_back(x);
  }
  return x;
}

UpBlockImpl::UpBlockImpl(const BlockSpec& s) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (s.attention) attentions = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < s.layers; ++i) {
    const int64_t skip_ch = i == s.layers - 1 ? s.in : s.out;
    const int64_t in_ch = i == 0 ? s.prev_out : s.out;
    resnets->push_back(ResnetBlock2D(in_ch + skip_ch, s.out, s.temb, s.groups, s.eps));
    if (s.attention)
      attentions->push_back(Transformer2DModel(s.heads, s.out / s.heads, s.out, s.transformer_layers, s.cross_dim,
                                               s.groups, s.linear_projection));
  }
  if (s.resample) upsamplers = register_module("upsamplers", torch::nn::ModuleList(Upsample2D(s.out)));
}

torch::Tensor UpBlockImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                                   std::vector<torch::Tensor>& skips, const BlockContext& bc) {
  for (size_t i = 0; i < resnets->size(); ++i) {
    DUALIGN_CHECK(!skips.empty(), "UNet up block: ran out of skip connections");
    x = torch::cat({x, skips.back()}, 1);
    skips.pop_back();
    ResnetBlock2D rh(std::dynamic_pointer_cast<ResnetBlock2DImpl>(resnets->ptr(i)));
    x = run_resnet(rh, x, temb, bc);
    if (attentions) {
      Transformer2DModel th(std::dynamic_pointer_cast<Transformer2DModelImpl>(attentions->ptr(i)));
      x = run_transformer(th, x, context, bc);
    }
  }
  if (upsamplers) x = upsamplers[0]->as<Upsample2D>()->forward(x);
  return x;
}

MidBlockImpl::MidBlockImpl(const BlockSpec& s, double output_scale_factor) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  resnets->push_back(ResnetBlock2D(s.in, s.in, s.temb, s.groups, s.eps, output_scale_factor));
  if (s.attention) {
    attentions = register_module("attentions", torch::nn::ModuleList());
    for (int64_t i = 0; i < s.layers; ++i) {
      attentions->push_back(Transformer2DModel(s.heads, s.in / s.heads, s.in, s.transformer_layers, s.cross_dim,
                                               s.groups, s.linear_projection));
      resnets->push_back(ResnetBlock2D(s.in, s.in, s.temb, s.groups, s.eps, output_scale_factor));
    }
  }
}

torch::Tensor MidBlockImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                                    const BlockContext& bc) {
  ResnetBlock2D first(std::dynamic_pointer_cast<ResnetBlock2DImpl>(resnets->ptr(0)));
  x = run_resnet(first, x, temb, bc);
  if (attentions) {
    for (size_t i = 0; i < attentions->size(); ++i) {
      Transformer2DModel th(std::dynamic_pointer_cast<Transformer2DModelImpl>(attentions->ptr(i)));
      x = run_transformer(th, x, context, bc);
      ResnetBlock2D rh(std::dynamic_pointer_cast<ResnetBlock2DImpl>(resnets->ptr(i + 1)));
      x = run_resnet(rh, x, temb, bc);
    }
  }
  return x;
}

namespace {

int64_t conv3_params(int64_t in, int64_t out) { return 9 * in * out + out; }

int64_t resnet_params(int64_t in, int64_t out, int64_t temb) {
  return 2 * in + conv3_params(in, out) + (temb > 0 ? temb * out + out : 0) + 2 * out + conv3_params(out, out) +
         (in != out ? in * out + out : 0);
}

// Transformer2DModel over `channels` (inner width = channels: heads x channels / heads).
int64_t transformer_params(int64_t channels, int64_t layers, int64_t cross_dim) {
  const int64_t d = channels;
  const int64_t attn1 = 4 * d * d + d, attn2 = 2 * d * d + 2 * cross_dim * d + d;  // q, k, v without bias
  const int64_t ff = d * 8 * d + 8 * d + 4 * d * d + d;                              // GEGLU proj, then 4d → d
  const int64_t block = 3 * 2 * d + attn1 + attn2 + ff;                             // + three LayerNorms
  return 2 * d + 2 * (d * d + d) + layers * block;  // GroupNorm, proj_in, proj_out (1x1 conv or linear alike)
}

}  // namespace

int64_t down_block_parameter_count(const BlockSpec& s) {
  int64_t n = s.resample ? conv3_params(s.out, s.out) : 0;
  for (int64_t i = 0; i < s.layers; ++i) {
    n += resnet_params(i == 0 ? s.in : s.out, s.out, s.temb);
    if (s.attention) n += transformer_params(s.out, s.transformer_layers, s.cross_dim);
  }
  return n;
}

int64_t up_block_parameter_count(const BlockSpec& s) {
  int64_t n = s.resample ? conv3_params(s.out, s.out) : 0;
  for (int64_t i = 0; i < s.layers; ++i) {
    n += resnet_params((i == 0 ? s.prev_out : s.out) + (i == s.layers - 1 ? s.in : s.out), s.out, s.temb);
    if (s.attention) n += transformer_params(s.out, s.transformer_layers, s.cross_dim);
  }
  return n;
}

int64_t mid_block_parameter_count(const BlockSpec& s) {
  int64_t n = resnet_params(s.in, s.in, s.temb);
  if (s.attention)
    n += s.layers * (transformer_params(s.in, s.transformer_layers, s.cross_dim) + resnet_params(s.in, s.in, s.temb));
  return n;
}

}  // namespace dualign::models
