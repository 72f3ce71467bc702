// Distances between sample sets, for checking generated samples against a reference law.
#pragma once
#include <torch/torch.h>

namespace dualign::eval {

// Energy distance 2 E||X-Y|| - E||X-X'|| - E||Y-Y'|| (V-statistic; >= 0, 0 iff equal laws).
// x [n, D], y [m, D]; computed in float64 in blocks so 10k x 10k fits in memory.
double energy_distance(const torch::Tensor& x, const torch::Tensor& y);

// Fréchet distance between Gaussians fitted to two feature sets x [n, D], y [m, D] (FID's formula):
//   ‖μ_x − μ_y‖² + tr(Σ_x + Σ_y − 2 (Σ_x^½ Σ_y Σ_x^½)^½), float64, square roots by symmetric eigendecomposition.
double frechet_distance(const torch::Tensor& x, const torch::Tensor& y);

}  // namespace dualign::eval
