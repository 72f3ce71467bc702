// The fixtures of the data-parallel equivalence tests (AdamW and Adafactor): an MLP and a small conv net, the
// global batch of each step (seeded by the step only, so identical on every rank), flattened parameters, the
// process's communicator.
#pragma once
#include <torch/torch.h>

#include <utility>
#include <vector>

#include "dist/comm.h"
#include "dist/runtime.h"

namespace dualign::dist::test {

constexpr int kGlobalBatch = 16;

inline Comm& comm() {
  static auto c = make_comm(world(), torch::kCPU);
  return *c;
}

enum class Net { mlp, conv };
enum class Mode { ddp, zero1, zero2 };

inline torch::nn::Sequential make_net(Net net, uint64_t seed) {
  torch::manual_seed(seed);
  if (net == Net::mlp)
    return torch::nn::Sequential(torch::nn::Linear(8, 32), torch::nn::Tanh(), torch::nn::Linear(32, 32),
                                 torch::nn::Tanh(), torch::nn::Linear(32, 4));
  return torch::nn::Sequential(
      torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)), torch::nn::ReLU(),
      torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 8, 3).stride(2).padding(1)), torch::nn::ReLU(),
      torch::nn::Flatten(), torch::nn::Linear(8 * 4 * 4, 3));
}

inline std::pair<torch::Tensor, torch::Tensor> global_batch(Net net, int step) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + step);
  auto x = net == Net::mlp ? torch::randn({kGlobalBatch, 8}, gen) : torch::randn({kGlobalBatch, 1, 8, 8}, gen);
  auto y = torch::randn({kGlobalBatch, net == Net::mlp ? 4 : 3}, gen);
  return {x, y};
}

inline torch::Tensor flat_params(torch::nn::Module& m) {
  std::vector<torch::Tensor> parts;
  for (const auto& p : m.parameters()) parts.push_back(p.detach().reshape({-1}));
  return torch::cat(parts);
}

}  // namespace dualign::dist::test
