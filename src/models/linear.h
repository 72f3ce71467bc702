// y = x W^T + b through aten::linear, the op PyTorch's nn.Linear runs. LibTorch's LinearImpl::forward computes
// matmul(x, W.t()) and adds the bias afterwards: under autocast that rounds x W^T to bf16 before the bias is
// added, unlike PyTorch, and casts the transposed view of W at every call instead of once per forward. Every
// network here (UNet, VAE, CLIP towers) calls its Linear layers through this.
#pragma once
#include <torch/torch.h>

namespace dualign::models {

inline torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return torch::linear(x, layer->weight, layer->bias);
}

}  // namespace dualign::models
