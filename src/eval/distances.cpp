#include "eval/distances.h"

namespace dualign::eval {
namespace {
double mean_pairwise_distance(const torch::Tensor& a, const torch::Tensor& b) {
  double total = 0;
  const int64_t block = 2048;
  for (int64_t i = 0; i < a.size(0); i += block) {
    auto ai = a.narrow(0, i, std::min(block, a.size(0) - i));
    total += torch::cdist(ai, b).sum().item<double>();
  }
  return total / static_cast<double>(a.size(0) * b.size(0));
}
}  // namespace

double energy_distance(const torch::Tensor& x, const torch::Tensor& y) {
  auto xd = x.to(torch::kFloat64).flatten(1), yd = y.to(torch::kFloat64).flatten(1);
  return 2 * mean_pairwise_distance(xd, yd) - mean_pairwise_distance(xd, xd) - mean_pairwise_distance(yd, yd);
}

}  // namespace dualign::eval
