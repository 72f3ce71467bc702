// Implicit-reward accuracy of a policy/reference pair on held-out preference pairs (Diffusion-DPO's view of
// how well the fine-tuned model ranks winners over losers).
//
// For a pair (c, x^w, x^l), one t ~ U{0..T-1} and one ε shared by both images:
//   m_M^i = mean over elements of ‖target(x^i, ε, t) − M(x_t^i, t, c)‖²   (target = ε or v, as in training)
//   logit = −β [(m_θ^w − m_ref^w) − (m_θ^l − m_ref^l)]
// averaged over `t_draws` independent (t, ε) draws per pair. The pair is ranked correctly when the mean logit
// is > 0 (ties, e.g. policy = reference, count ½). β > 0 does not change the sign; it scales mean_logit.
#pragma once
#include <torch/torch.h>

#include <string>

#include "diffusion/schedule.h"
#include "eval/denoiser.h"
#include "eval/metrics.h"

namespace dualign::eval {

struct PreferencePairs {
  torch::Tensor winner, loser;  // [N, ...] float32 (uint8 images mapped to [-1, 1])
  data::Condition cond;      // class_id / text_embedding when the file has them
};
// Reads a `preference_pairs` HDF5 file (src/data/README.md); at most max_pairs rows (<= 0: all).
PreferencePairs read_preference_pairs(const std::string& path, int64_t max_pairs = 0);

struct ImplicitAccuracy {
  MeanSe accuracy;        // fraction of pairs ranked correctly (ties ½), ± se
  MeanSe logit;           // mean DPO logit (with the given β)
  torch::Tensor logits;   // [N] float64, averaged over t draws
};
ImplicitAccuracy implicit_accuracy(const Denoiser& policy, const Denoiser& reference,
                                   const diffusion::NoiseSchedule& schedule, const PreferencePairs& pairs,
                                   int64_t t_draws = 4, uint64_t seed = 0, double beta = 1.0, int64_t batch_size = 256);

}  // namespace dualign::eval
