// Validation samples while training: every `run.sample_every` steps rank 0 draws the same `run.sample_count`
// samples (fixed x_T, deterministic DDIM with `run.sample_steps` steps; class-conditional models get an even
// split over their classes) from the current weights, and writes them as <run.dir>/samples/step-<step>.png
// and as a TensorBoard image, so a run can be watched converge. Images with 1 or 3 channels become a grid,
// 2-D points a scatter plot; latents need the VAE and are skipped with one log line.
#pragma once
#include <cstdint>
#include <string>

namespace dualign {
class MetricsWriter;
}
namespace dualign::diffusion {
class NoiseSchedule;
}
namespace dualign::models {
class ScoreModel;
}

namespace dualign::train {
struct TrainSettings;

class ValidationSamples {
 public:
  ValidationSamples(const TrainSettings& s, const diffusion::NoiseSchedule& schedule, bool rank0);
  // Called by every rank after each step; only rank 0 samples, at multiples of run.sample_every.
  void maybe_write(int64_t step, models::ScoreModel& model, MetricsWriter& metrics);

 private:
  const diffusion::NoiseSchedule& schedule_;
  std::string dir_;
  int64_t every_, count_, steps_;
  uint64_t seed_;
  bool enabled_, warned_ = false;
};

}  // namespace dualign::train
