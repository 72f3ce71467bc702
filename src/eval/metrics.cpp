#include "eval/metrics.h"

#include <cmath>

#include "util/error.h"

namespace dualign::eval {

MeanSe mean_se(const torch::Tensor& values) {
  auto v = values.detach().to(torch::kCPU, torch::kFloat64).flatten();
  MeanSe out;
  out.n = v.numel();
  if (out.n == 0) return out;
  out.mean = v.mean().item<double>();
  if (out.n >= 2) out.se = v.std(/*unbiased=*/true).item<double>() / std::sqrt(double(out.n));
  return out;
}

MeanSe win_rate(const torch::Tensor& policy_reward, const torch::Tensor& reference_reward, double tie_tolerance) {
  DUALIGN_CHECK(policy_reward.numel() == reference_reward.numel() && policy_reward.numel() > 0,
                "win rate: need as many policy as reference rewards (> 0), got {} and {}", policy_reward.numel(),
                reference_reward.numel());
  auto a = policy_reward.detach().to(torch::kCPU, torch::kFloat64).flatten();
  auto b = reference_reward.detach().to(torch::kCPU, torch::kFloat64).flatten();
  auto diff = a - b;
  auto wins = (diff > tie_tolerance).to(torch::kFloat64) + 0.5 * (diff.abs() <= tie_tolerance).to(torch::kFloat64);
  return mean_se(wins);
}

ClassHistogram class_histogram_from_labels(const torch::Tensor& labels_in, int64_t num_classes, double min_share) {
  DUALIGN_CHECK(num_classes >= 1, "class histogram: need num_classes >= 1, got {}", num_classes);
  auto labels = labels_in.detach().to(torch::kCPU, torch::kInt64).flatten();
  DUALIGN_CHECK(labels.numel() > 0, "class histogram: no samples");
  DUALIGN_CHECK(labels.min().item<int64_t>() >= 0 && labels.max().item<int64_t>() < num_classes,
                "class histogram: labels must lie in [0, {}), got range [{}, {}]", num_classes,
                labels.min().item<int64_t>(), labels.max().item<int64_t>());
  auto counts = torch::bincount(labels, {}, num_classes).to(torch::kFloat64);
  auto share = counts / double(labels.numel());
  ClassHistogram h;
  h.share.assign(share.data_ptr<double>(), share.data_ptr<double>() + num_classes);
  const double uniform = 1.0 / double(num_classes);
  for (double s : h.share) {
    if (s >= min_share) ++h.coverage;
    if (s > 0) h.entropy -= s * std::log(s);
    h.tv_uniform += 0.5 * std::abs(s - uniform);
  }
  h.mean_max_prob = 1.0;
  return h;
}

ClassHistogram class_histogram(const torch::Tensor& probs_in, double min_share) {
  DUALIGN_CHECK(probs_in.dim() == 2 && probs_in.size(0) > 0 && probs_in.size(1) > 0,
                "class histogram: expected probabilities [N, K], got {}", c10::str(probs_in.sizes()));
  auto probs = probs_in.detach().to(torch::kCPU, torch::kFloat64);
  auto h = class_histogram_from_labels(probs.argmax(1), probs.size(1), min_share);
  h.mean_max_prob = std::get<0>(probs.max(1)).mean().item<double>();
  return h;
}

torch::Tensor class_probabilities(const ClassProbFn& classifier, const torch::Tensor& x, int64_t batch_size) {
  DUALIGN_CHECK(batch_size > 0 && x.size(0) > 0, "class_probabilities: need rows and batch_size > 0");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> chunks;
  for (int64_t start = 0; start < x.size(0); start += batch_size) {
    auto p = classifier(x.narrow(0, start, std::min(batch_size, x.size(0) - start)));
    DUALIGN_CHECK(p.dim() == 2, "classifier returned {} for a batch; expected probabilities [B, K]", c10::str(p.sizes()));
    chunks.push_back(p.detach().to(torch::kCPU, torch::kFloat32));
  }
  return torch::cat(chunks, 0);
}

}  // namespace dualign::eval
