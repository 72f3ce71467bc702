#include "dual/projection.h"

#include <algorithm>
#include <functional>
#include <numeric>

#include "util/error.h"

namespace dualign::dual {

std::vector<double> project_nonneg(std::vector<double> lambda) {
  for (double& l : lambda) l = std::max(l, 0.0);
  return lambda;
}

std::vector<double> project_simplex(const std::vector<double>& lambda) {
  // Duchi et al. 2008: the projection is max(λ_i − τ, 0) with τ chosen so that the result sums to one.
  std::vector<double> sorted = lambda;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  double cumulative = 0, tau = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    cumulative += sorted[i];
    const double candidate = (cumulative - 1.0) / static_cast<double>(i + 1);
    if (sorted[i] - candidate > 0) tau = candidate;
  }
  std::vector<double> out(lambda.size());
  for (size_t i = 0; i < lambda.size(); ++i) out[i] = std::max(lambda[i] - tau, 0.0);
  return out;
}

std::vector<double> step_sumzero_clip(const std::vector<double>& lambda, std::vector<double> step) {
  const double mean = std::accumulate(step.begin(), step.end(), 0.0) / static_cast<double>(step.size());
  std::vector<double> out(lambda.size());
  for (size_t i = 0; i < lambda.size(); ++i) out[i] = std::clamp(lambda[i] + step[i] - mean, 0.0, 1.0);
  return out;
}

std::vector<double> ascend(const std::string& projection, const std::vector<double>& lambda,
                           const std::vector<double>& step) {
  if (lambda.size() != step.size()) fail("dual ascent: {} dual variables but a step of size {}", lambda.size(), step.size());
  if (projection == "sumzero_clip") return step_sumzero_clip(lambda, step);
  std::vector<double> moved(lambda.size());
  for (size_t i = 0; i < lambda.size(); ++i) moved[i] = lambda[i] + step[i];
  if (projection == "nonneg") return project_nonneg(std::move(moved));
  if (projection == "simplex") return project_simplex(moved);
  fail("unknown dual projection '{}' (known: nonneg, simplex, sumzero_clip)", projection);
}

}  // namespace dualign::dual
