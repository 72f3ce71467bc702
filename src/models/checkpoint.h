// Activation checkpointing for LibTorch C++ (which has none): run a block without keeping its activations and
// recompute it during backward. A custom autograd function receives the block inputs *and* the block's
// parameters as inputs, so gradients reach the parameters through the normal graph (works with backward()
// and autograd::grad alike). The block must be deterministic (no dropout RNG) — ours use dropout 0.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

namespace dualign::models {

using BlockFn = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>& inputs)>;

// Returns fn(inputs); when grad mode is on, the activations inside fn are recomputed in backward.
// `params` are the parameters fn reads (e.g. module->parameters()). Undefined inputs are allowed.
std::vector<torch::Tensor> checkpoint(const BlockFn& fn, const std::vector<torch::Tensor>& inputs,
                                      const std::vector<torch::Tensor>& params);

}  // namespace dualign::models
