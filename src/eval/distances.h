// Distances between sample sets, for checking generated samples against a reference law.
#pragma once
#include <torch/torch.h>

namespace dualign::eval {

// Energy distance 2 E||X-Y|| - E||X-X'|| - E||Y-Y'|| (V-statistic; >= 0, 0 iff equal laws).
// x [n, D], y [m, D]; computed in float64 in blocks so 10k x 10k fits in memory.
double energy_distance(const torch::Tensor& x, const torch::Tensor& y);

}  // namespace dualign::eval
