#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <string>

inline std::string parity_dir() {
  const char* d = std::getenv("DUALIGN_PARITY_DIR");
  if (!d) throw std::runtime_error("DUALIGN_PARITY_DIR is not set (run through ctest: the fixture test makes it)");
  return d;
}

inline double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}
