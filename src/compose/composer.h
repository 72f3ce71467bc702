// AND composition as a primal–dual loop (Khalafi et al. 2025; docs/methods.md#composition):
//     min_p max_i KL(p ‖ q_i)   ⇔   max_{λ ∈ simplex} min_p Σ_i λ_i KL(p ‖ q_i),   p*(λ) = q_AND^{(λ)} ∝ Π q_i^{λ_i}.
// One round = (primal) + one dual step λ ← proj_simplex(λ + η · KL̂) through dual::DualAscent (projection
// simplex, thresholds 0: the simplex eliminates the epigraph variable):
//   mode dual   (Algorithm 3, images): no primal; p is DDIM on ε_λ = Σ λ_i ε_i and KL̂_i uses s_p = Σ λ_i s_i.
//   mode primal (Algorithm 2, 2-D): a student score model is trained by denoising score matching on samples of
//               q_AND^{(λ)} from annealed Langevin on ε_λ (Du et al. 2023); KL̂_i uses the student's samples and ε.
// KL̂ is the point-wise estimator of Lemma 2 (pointwise_kl.h), on `n` samples per round split over the ranks;
// the per-rank sums are all-reduced inside DualAscent, so λ is identical on every rank. Every random number is
// drawn for the global sample set from (seed, round, purpose) and sliced per rank: any world size gives the
// single-process trajectory up to floating-point summation order.
// State (λ, the dual EMA/counter, the student and its Adam moments, the history) is checkpointed after every
// round with src/ckpt (rank 0 writes; atomic `latest`) and restored by the next run on the same directory.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compose/components.h"
#include "compose/product_sampling.h"
#include "diffusion/sampler.h"
#include "dual/dual_ascent.h"

namespace dualign::dist {
class Comm;
}

namespace dualign::compose {

struct ComposeSettings {
  std::string mode = "dual";  // dual | primal
  int64_t rounds = 10;        // dual steps
  int64_t n = 512;            // samples per dual step (all ranks together)
  int64_t strata = 10;        // KL timesteps per sample (stratified in log-SNR)
  diffusion::SamplerConfig sampler;  // DDIM for the composition (dual) / the student (primal)
  int64_t batch = 512;        // rows per model call
  dual::DualSettings dual;    // projection must be simplex
  uint64_t seed = 0;
  // primal only
  LangevinConfig langevin;
  int64_t mcmc_n = 2048;      // annealed-Langevin samples of q_AND per round (divisible by the world size)
  int64_t distill_steps = 300;
  int64_t distill_batch = 512;  // global DSM batch (divisible by the world size)
  double distill_lr = 2e-3;
  std::string checkpoint_dir;  // "" = no checkpoints
};

struct RoundRecord {
  int64_t round = 0;
  std::vector<double> lambda;       // used this round
  std::vector<double> kl, kl_se;    // KL̂_i (global mean) and its standard error
  std::vector<double> lambda_next;  // after the dual step
  double dsm_loss = 0;              // primal: mean DSM loss of the last 50 distillation steps
  double seconds = 0;
};

class Composer {
 public:
  // `student` (primal mode only): the trainable score model, on `device`, with the components' schedule.
  Composer(std::vector<Component> components, const diffusion::NoiseSchedule& schedule,
           std::vector<int64_t> sample_shape, ComposeSettings settings, dist::Comm& comm, torch::Device device,
           std::shared_ptr<models::ScoreModel> student = nullptr);

  // Runs the remaining rounds (after resuming from checkpoint_dir when it has a checkpoint). `on_round` sees
  // every finished round on every rank.
  void run(const std::function<void(const RoundRecord&)>& on_round = {});

  std::vector<double> lambda() const { return dual_.lambda(); }
  const std::vector<RoundRecord>& history() const { return history_; }
  int64_t rounds_done() const { return static_cast<int64_t>(history_.size()); }

  // This rank's rows of n samples of the current composition: DDIM on ε_λ (`lambda`, default: current) or,
  // in primal mode, DDIM on the student.
  torch::Tensor sample(int64_t n, uint64_t seed, const std::vector<double>& lambda = {});
  // This rank's rows of n samples from annealed Langevin on ε_λ.
  torch::Tensor sample_langevin(int64_t n, uint64_t seed, const std::vector<double>& lambda);
  // Per-sample KL̂ [rows, m] of the given samples (this rank's rows of n) with s_p = the student's score
  // (`student_score`, primal mode) or `lambda`'s surrogate Σ λ_i s_i.
  torch::Tensor estimate_kl(const torch::Tensor& x0, int64_t n, uint64_t seed, const std::vector<double>& lambda,
                            bool student_score);

  Rows my_rows(int64_t n) const;
  const torch::Device& device() const { return device_; }

 private:
  void distill(int64_t round, RoundRecord& record);
  void save(int64_t round);
  void maybe_resume();

  std::vector<Component> components_;
  const diffusion::NoiseSchedule& schedule_;
  std::vector<int64_t> shape_;
  ComposeSettings s_;
  dist::Comm& comm_;
  torch::Device device_;
  std::shared_ptr<models::ScoreModel> student_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  dual::DualAscent dual_;
  std::vector<RoundRecord> history_;
};

// History <-> JSON text (stored in checkpoints and written by the command).
std::string history_json(const std::vector<RoundRecord>& history);
std::vector<RoundRecord> history_from_json(const std::string& text);

}  // namespace dualign::compose
