// Projections of dual variables after an ascent step. All act on plain vectors (m is small: one entry per
// constraint or per composed model) so every rank computes bit-identical results from identical inputs.
#pragma once
#include <string>
#include <vector>

namespace dualign::dual {

// λ_i ← max(λ_i, 0): inequality constraints (constrained alignment).
std::vector<double> project_nonneg(std::vector<double> lambda);

// Euclidean projection onto the probability simplex {λ ≥ 0, Σλ = 1} (sort-based, exact): AND composition,
// where the simplex eliminates the epigraph variable u.
std::vector<double> project_simplex(const std::vector<double>& lambda);

// The OR-composition rule of the reference notebook, applied to a step g: remove its mean (so Σλ stays
// fixed), then clip every λ_i to [0, 1]. Cheaper than the simplex projection and not identical to it.
std::vector<double> step_sumzero_clip(const std::vector<double>& lambda, std::vector<double> step);

// "nonneg" | "simplex" | "sumzero_clip" -> applies λ + step and projects.
std::vector<double> ascend(const std::string& projection, const std::vector<double>& lambda,
                           const std::vector<double>& step);

}  // namespace dualign::dual
