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

namespace {
// Symmetric PSD square root (negative eigenvalues from rounding clamped to 0).
torch::Tensor sqrt_psd(const torch::Tensor& a) {
  auto [values, vectors] = torch::linalg_eigh(a);
  return vectors.matmul(torch::diag(values.clamp_min(0).sqrt())).matmul(vectors.transpose(0, 1));
}
torch::Tensor covariance(const torch::Tensor& x, const torch::Tensor& mean) {
  auto c = x - mean;
  return c.transpose(0, 1).matmul(c) / static_cast<double>(x.size(0) - 1);
}
}  // namespace

double frechet_distance(const torch::Tensor& x, const torch::Tensor& y) {
  auto xd = x.to(torch::kFloat64).flatten(1), yd = y.to(torch::kFloat64).flatten(1);
  TORCH_CHECK(xd.size(1) == yd.size(1) && xd.size(0) > 1 && yd.size(0) > 1,
              "frechet_distance: need two sets of >= 2 rows with the same width");
  auto mx = xd.mean(0), my = yd.mean(0);
  auto sx = covariance(xd, mx), sy = covariance(yd, my);
  auto root_x = sqrt_psd(sx);
  auto cross = sqrt_psd(root_x.matmul(sy).matmul(root_x));
  return ((mx - my).pow(2).sum() + torch::trace(sx) + torch::trace(sy) - 2 * torch::trace(cross)).item<double>();
}

}  // namespace dualign::eval
