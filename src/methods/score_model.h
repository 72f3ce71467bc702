// The denoiser as methods see it: ε/v prediction from (x_t, t, condition), plus its parameters. Built from
// the `model` config group; one implementation per architecture (MLP for toys, UNet for images).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

namespace dualign::config {
class Section;
}

namespace dualign::methods {

class ScoreModel {
 public:
  virtual ~ScoreModel() = default;
  // x_t [B, ...], t [B] int64 timesteps, labels [B] int64 or undefined → model output shaped like x_t.
  virtual torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& labels) = 0;
  virtual torch::nn::Module& module() = 0;
  virtual std::string describe() const = 0;
  // Shape of one sample (e.g. {2} or {1, 28, 28}), for samplers.
  virtual std::vector<int64_t> sample_shape() const = 0;

  std::vector<torch::Tensor> parameters() { return module().parameters(); }
  int64_t num_parameters();
};

// Reads and validates the `model` section (strict: unknown keys are errors) and builds the network on `device`.
std::shared_ptr<ScoreModel> build_score_model(const config::Section& model, const torch::Device& device);

}  // namespace dualign::methods
