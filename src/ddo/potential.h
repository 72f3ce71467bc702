// The DDO potential f: x → scalar, a small MLP on points or, for images [C, H, W], a convolutional trunk (3×3
// convolutions with SiLU, two stride-2 downsamplings, flattened) under the same MLP head. The aligned law it
// stands for is the Gibbs tilt of the reference q ∝ p_ref · exp(−f). f is defined up to an additive constant (it
// cancels in q).
//
// The network regresses standardised targets; the output is rescaled by the target mean and scale stored as
// buffers, so f(x) = mean + scale · net(x) is on the scale of the targets whatever their size.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ddo/collective.h"

namespace dualign::ddo {

struct PotentialOptions {
  std::vector<int64_t> sample_shape{2};  // {D} points, or {C, H, W} images
  std::string kind = "mlp";              // mlp (any shape, flattened) | conv (images)
  int64_t hidden = 128;
  int64_t depth = 3;      // hidden layers of the MLP head
  int64_t channels = 32;  // conv: width of the first convolution (then 2×, 2×)
};

class PotentialImpl : public torch::nn::Module {
 public:
  explicit PotentialImpl(const PotentialOptions& options);
  // x [B, ...sample_shape] → f(x) [B] (differentiable in x).
  torch::Tensor forward(const torch::Tensor& x);
  // Changes the output scale to `scale` (and the output mean to 0) without changing the function: the last
  // layer absorbs the old mean and scale. Called before fitting targets of a new size.
  void rescale_output(double scale);

 private:
  torch::nn::Sequential features_{nullptr};  // conv trunk (images) or flatten
  torch::nn::Sequential net_{nullptr};
  torch::nn::Linear last_{nullptr};
  torch::Tensor out_mean_, out_scale_;
};
TORCH_MODULE(Potential);

struct FitOptions {
  int64_t steps = 600;       // Adam steps (full batch when n <= batch, else random mini-batches)
  int64_t batch = 1024;
  double lr = 2e-3;
  uint64_t seed = 0;
};

struct FitResult {
  double rmse = 0;      // root-mean-square error on all points after fitting (target units, centred)
  double target_std = 0;
};

// Regresses f(x_i) ≈ target_i + c (c a free constant: targets are centred) by MSE over the points, warm
// started from f's current weights. x [n_local, D], target [n_local]: this rank's rows of the global set
// (`shard`; shard.total == 0: one process with all of them); rows may be points or images. Data-parallel: the mini-batch is drawn as global
// indices from the same generator on every rank, each rank back-propagates the squared errors of the rows it
// holds divided by the global batch size, and the gradients are summed over ranks before each Adam step, so
// every rank takes the same step (the single-process step up to float summation order) and f stays identical.
FitResult fit_potential(Potential& f, const torch::Tensor& x, const torch::Tensor& target, const FitOptions& options,
                        const Shard& shard = {}, dist::Comm* comm = nullptr);

}  // namespace dualign::ddo
