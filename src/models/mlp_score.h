// Score network for low-dimensional toy data: sinusoidal time embedding + MLP, optional class conditioning.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <optional>

namespace dualign::models {

struct ScoreMLPConfig {
  int64_t data_dim = 2;
  int64_t hidden = 128;
  int64_t depth = 3;          // number of hidden layers
  int64_t time_embed_dim = 64;
  int64_t num_classes = 0;    // > 0: class-conditional (label num_classes means "null class" for CFG)
};

// Sinusoidal embedding as in diffusers' get_timestep_embedding(flip_sin_to_cos=True, downscale_freq_shift=0):
// t [B] (int or float) → [B, dim] = [cos(t·f), sin(t·f)], f_i = exp(-ln(10000)·i/(dim/2)).
torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim, bool flip_sin_to_cos = true,
                                   double downscale_freq_shift = 0.0, double max_period = 10000.0);

class ScoreMLPImpl : public torch::nn::Module {
 public:
  explicit ScoreMLPImpl(ScoreMLPConfig config = {});
  // x [B, D], t [B] (int64 or float timesteps), labels [B] int64 (optional) → [B, D]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const std::optional<torch::Tensor>& labels = std::nullopt);
  const ScoreMLPConfig& config() const { return config_; }

 private:
  ScoreMLPConfig config_;
  torch::nn::Sequential time_mlp_{nullptr};
  torch::nn::Embedding class_embed_{nullptr};
  torch::nn::Linear input_{nullptr}, output_{nullptr};
  torch::nn::ModuleList hidden_{nullptr};
};
TORCH_MODULE(ScoreMLP);

}  // namespace dualign::models
