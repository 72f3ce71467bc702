#include "models/mlp_score.h"

#include <cmath>

#include "util/error.h"

namespace dualign::models {

torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim, bool flip_sin_to_cos,
                                   double downscale_freq_shift, double max_period) {
  const int64_t half = dim / 2;
  auto exponent = -std::log(max_period) *
                  torch::arange(0, half, torch::TensorOptions().dtype(torch::kFloat32).device(t.device()));
  exponent = exponent / (double(half) - downscale_freq_shift);
  auto freqs = torch::exp(exponent);
  auto args = t.reshape({-1, 1}).to(torch::kFloat32) * freqs.unsqueeze(0);
  auto emb = torch::cat({torch::sin(args), torch::cos(args)}, -1);
  if (flip_sin_to_cos) emb = torch::cat({emb.slice(1, half), emb.slice(1, 0, half)}, -1);
  if (dim % 2 == 1) emb = torch::nn::functional::pad(emb, torch::nn::functional::PadFuncOptions({0, 1}));
  return emb;
}

ScoreMLPImpl::ScoreMLPImpl(ScoreMLPConfig config) : config_(config) {
  DUALIGN_CHECK(config_.data_dim > 0 && config_.hidden > 0 && config_.depth >= 1 && config_.time_embed_dim >= 2,
                "ScoreMLP config: data_dim, hidden > 0, depth >= 1, time_embed_dim >= 2 (got {}, {}, {}, {})",
                config_.data_dim, config_.hidden, config_.depth, config_.time_embed_dim);
  const int64_t h = config_.hidden;
  time_mlp_ = register_module("time_mlp", torch::nn::Sequential(torch::nn::Linear(config_.time_embed_dim, h),
                                                                 torch::nn::SiLU(), torch::nn::Linear(h, h)));
  if (config_.num_classes > 0)
    class_embed_ = register_module("class_embed", torch::nn::Embedding(config_.num_classes + 1, h));
  input_ = register_module("input", torch::nn::Linear(config_.data_dim, h));
  hidden_ = register_module("hidden", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.depth; ++i) hidden_->push_back(torch::nn::Linear(h, h));
  output_ = register_module("output", torch::nn::Linear(h, config_.data_dim));
}

torch::Tensor ScoreMLPImpl::forward(const torch::Tensor& x, const torch::Tensor& t,
                                    const std::optional<torch::Tensor>& labels) {
  DUALIGN_CHECK(x.dim() == 2 && x.size(1) == config_.data_dim, "ScoreMLP: x must be [B, {}], got {}",
                config_.data_dim, c10::str(x.sizes()));
  auto temb = time_mlp_->forward(sinusoidal_embedding(t, config_.time_embed_dim).to(x.dtype()));
  if (temb.size(0) == 1 && x.size(0) > 1) temb = temb.expand({x.size(0), -1});
  if (class_embed_ && labels) temb = temb + class_embed_->forward(labels->to(torch::kInt64));
  // Each hidden layer sees the time/class embedding (added) and keeps a residual path.
  auto h = input_->forward(x);
  for (auto& layer : *hidden_) h = h + layer->as<torch::nn::Linear>()->forward(torch::silu(h + temb));
  return output_->forward(torch::silu(h));
}

}  // namespace dualign::models
