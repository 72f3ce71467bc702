// Summary statistics of evaluation: means with standard errors, paired win rates, class histograms.
// Everything here works on tensors already computed (rewards, class probabilities), so it is model-agnostic.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

namespace dualign::eval {

struct MeanSe {
  double mean = 0, se = 0;  // se = sample std (n-1) / sqrt(n); 0 when n < 2
  int64_t n = 0;
};
MeanSe mean_se(const torch::Tensor& values);  // any shape, flattened; float64 internally

// Paired win rate of a policy over a reference: sample i compares policy_reward[i] with reference_reward[i]
// (both models sampled from the same x_T, so pairs share their noise). Win = 1, tie = 0.5, loss = 0.
// Returned as mean ± standard error over the n pairs. Ties: |a - b| <= tie_tolerance.
MeanSe win_rate(const torch::Tensor& policy_reward, const torch::Tensor& reference_reward, double tie_tolerance = 0);

// A classifier as eval sees it: x [B, ...] → class probabilities [B, K] (rows sum to 1).
using ClassProbFn = std::function<torch::Tensor(const torch::Tensor& x)>;

struct ClassHistogram {
  std::vector<double> share;  // fraction of samples per class (argmax of the probabilities), sums to 1
  int64_t coverage = 0;       // classes holding at least `min_share` of the samples
  double entropy = 0;         // of `share`, nats (log K for uniform)
  double tv_uniform = 0;      // total variation to uniform: ½ Σ_k |share_k - 1/K|, in [0, 1 - 1/K]
  double mean_max_prob = 0;   // mean classifier confidence (low = ambiguous samples)
};
// probs [N, K] class probabilities (or one-hot rows). Each sample counts for its argmax class.
ClassHistogram class_histogram(const torch::Tensor& probs, double min_share = 0.01);
// The same from integer labels [N] in [0, K).
ClassHistogram class_histogram_from_labels(const torch::Tensor& labels, int64_t num_classes, double min_share = 0.01);

// Runs `classifier` over x in batches of `batch_size` rows; returns probabilities [N, K] (CPU float32).
torch::Tensor class_probabilities(const ClassProbFn& classifier, const torch::Tensor& x, int64_t batch_size = 256);

}  // namespace dualign::eval
