// Periodic checkpoints of a training run and exact resume.
//
// What a checkpoint holds (one HDF5 file per step under <run.dir>/ckpt, written atomically by ckpt::Store):
//   model/      parameters and buffers          optimizer/  AdamW moments and step per parameter
//   ema/        EMA shadow weights (if enabled) attrs       step, world_size, git_sha, ema_updates
//   method/     the method's state (dual variables), if it has any
//   nonfinite/  skipped-step counters           loss_scaler/ fp16 loss scale and growth tracker
//   texts       config_yaml (the composed config)
// Random streams need no saved state: every draw derives from (seed, step, micro-step, purpose), and the
// data order from (seed, step), so restoring the step restores them, for any number of ranks.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace torch::nn {
class Module;
}
namespace dualign::config {
class Config;
}
namespace dualign::dist {
class Comm;
}
namespace dualign::models {
class EMA;
}

namespace dualign::train {

class DistributedOptimizer;
class NonFinitePolicy;
struct TrainSettings;

struct TrainState {
  torch::nn::Module& model;
  DistributedOptimizer& optimizer;
  models::EMA* ema;  // may be null
  std::map<std::string, at::Tensor> method_state;  // the method's dual variables etc. (may be empty)
  NonFinitePolicy& nonfinite;
};

class Checkpointer {
 public:
  Checkpointer(const TrainSettings& s, const config::Config& cfg, dist::Comm& comm);
  ~Checkpointer();

  // Saves after `step` completed steps when step is a multiple of train.checkpoint_every or the last step.
  // Collective: every rank calls it (rank 0 writes; all wait for the file).
  void maybe_save(int64_t step, bool last, const TrainState& state);
  // Restores the checkpoint chosen by run.resume (auto: the run dir's latest, if any; a path; or none).
  // Returns the number of completed steps to continue from (0 for a fresh start).
  int64_t restore(const TrainState& state);

 private:
  void save(int64_t step, const TrainState& state);
  const TrainSettings& s_;
  const config::Config& cfg_;
  dist::Comm& comm_;
  std::string dir_;
};

}  // namespace dualign::train
