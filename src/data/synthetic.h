// Synthetic low-dimensional data: a 2-D Gaussian mixture (K components evenly on a circle) and preference
// data labelled by a Bradley-Terry oracle over reward(x) = -||x - target||^2:
//   P(a preferred over b) = sigmoid(beta * (reward(a) - reward(b))).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dualign::data {

struct MixtureSpec {
  int components = 8;
  double radius = 2.0;
  double stddev = 0.2;
  uint64_t seed = 0;
};

struct OracleSpec {
  std::vector<double> target = {2.0, 0.0};
  double beta = 4.0;  // Bradley-Terry inverse temperature (large = near-deterministic labels)
};

double quadratic_reward(const float* x, const std::vector<double>& target);

// Each writer creates the file, prints progress on stdout when `progress` is set, and validates nothing;
// run data::validate afterwards if wanted.
void write_mixture_points(const std::string& path, int64_t n, const MixtureSpec& mix, bool progress = false);
void write_mixture_pairs(const std::string& path, int64_t n, const MixtureSpec& mix, const OracleSpec& oracle,
                         bool progress = false);
// KTO data: desirable ~ Bernoulli(sigmoid(beta * (reward(x) - mean reward))).
void write_mixture_labelled(const std::string& path, int64_t n, const MixtureSpec& mix, const OracleSpec& oracle,
                            bool progress = false);

// Fashion-MNIST IDX -> <out_dir>/fmnist-train.h5 and fmnist-test.h5 (format images, uint8 [N,1,28,28]).
// `downsample` k > 1 stores k×k block means (28 → 14 for k = 2): 4× less compute for CPU-sized experiments.
// `subset` filters the TRAIN split only (the test split stays complete for held-out evaluation): keep the listed
// classes (empty: all), and of class c keep the first round(fraction[c] · n_c) images in file order (minority
// classes for the fairness experiments; deterministic, no RNG).
struct ClassSubset {
  std::vector<int64_t> classes;
  std::map<int64_t, double> fraction;
  bool empty() const { return classes.empty() && fraction.empty(); }
};
void import_fashion_mnist(const std::string& idx_dir, const std::string& out_dir, bool progress = false,
                          int64_t downsample = 1, const ClassSubset& subset = {});

}  // namespace dualign::data
