// The parameter update seen by the trainer, hiding how gradients are synchronised:
//   zero_stage 0: DDP-style GradSync (bucketed all-reduce overlapped with backward) + torch AdamW or dist::Adafactor
//   zero_stage 1: ZeRO-1 (reduce-scatter gradients, update this rank's shard, all-gather parameters)
//   zero_stage 2: ZeRO-2 (gradients reduce-scattered bucket by bucket during every backward into an fp32 shard accumulator)
// train.optimizer picks the update rule: adamw (ZeRO: dist::ZeroAdamW, flat shards) or adafactor (ZeRO:
// dist::ZeroAdafactor, whole parameters per rank, since its factored statistics need whole matrices).
//
// Mixed precision (docs/precision.md): the parameters stay fp32 (the master weights) and so do the optimizer
// state and the gradient buckets, whatever train.precision says; dist.reduce_dtype=bf16 only narrows the gradient
// collective. fp16 adds the dynamic loss scale (train/loss_scaler.h): backward() scales, step() unscales before
// clipping and skips the update when the gradient is not finite.
//
//   opt.zero_grad();
//   for micro in 0..A-1: { opt.begin_micro_step(micro == A-1); opt.backward(loss); }
//   StepReport r = opt.step(lr);
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "train/loss_scaler.h"

namespace dualign::dist {
class GradSync;
class ZeroAdamW;
class Adafactor;
class ZeroAdafactor;
}  // namespace dualign::dist

namespace dualign::train {

struct TrainSettings;

// What one optimizer step did. The same on every rank.
struct StepReport {
  double grad_norm = 0;          // global L2 norm of the (unscaled) gradient before clipping; NaN/inf when skipped
  bool applied = true;           // false: the gradient was not finite and no rank updated anything
  int64_t nonfinite_loss_ranks = 0;  // when skipped: how many ranks had a non-finite loss (0: the gradient alone)
  double loss_scale = 1;         // the scale this step's backward used (fp16; 1 otherwise)
};

class DistributedOptimizer {
 public:
  DistributedOptimizer(dist::Comm& comm, std::vector<torch::Tensor> params, const TrainSettings& s);
  ~DistributedOptimizer();

  void zero_grad();
  void begin_micro_step(bool last);
  // Back-propagates loss × the loss scale (1 unless fp16). A non-finite loss makes this rank's gradient NaN, so the
  // gradient collective tells every rank (nonfinite.h); the finiteness flag stays on the device until step().
  void backward(const torch::Tensor& loss);
  // Synchronises gradients, unscales them, clips them to train.grad_clip (global norm) and updates the parameters,
  // unless the global gradient norm is not finite: then no rank updates anything (and the fp16 scale backs off).
  StepReport step(double lr);
  const LossScaler& scaler() const { return scaler_; }

  // Checkpointing. Unsharded (DDP) state: AdamW moments (or Adafactor statistics) and steps by parameter name.
  // Sharded (ZeRO) state: this rank's master/exp_avg/exp_avg_sq shard and the step count, restorable at the same
  // world size (AdamW's also at another, train/zero_reshard.h); Adafactor: the master slot and the state of the
  // parameters this rank owns, at the same world size only.
  bool sharded() const { return zero_ != nullptr || zero_adafactor_ != nullptr; }
  bool reshardable() const { return zero_ != nullptr; }
  const std::string& name() const { return name_; }  // train.optimizer: adamw | adafactor
  std::map<std::string, torch::Tensor> shard_state() const;
  void load_shard_state(const std::map<std::string, torch::Tensor>& state, const std::string& source);
  std::map<std::string, torch::Tensor> state(const torch::nn::Module& module) const;
  void load_state(const torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state,
                  const std::string& source);
  // The loss scaler's state (fp16), the same on every rank: saved once, in the main checkpoint file.
  std::map<std::string, torch::Tensor> scaler_state() const { return scaler_.state(); }
  void load_scaler_state(const std::map<std::string, torch::Tensor>& state, const std::string& source) {
    scaler_.load_state(state, source);
  }

 private:
  dist::Comm& comm_;
  std::vector<torch::Tensor> params_;
  double grad_clip_ = 0;
  std::unique_ptr<dist::GradSync> sync_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
  std::unique_ptr<dist::ZeroAdamW> zero_;
  std::unique_ptr<dist::Adafactor> adafactor_;
  std::unique_ptr<dist::ZeroAdafactor> zero_adafactor_;
  std::string name_;
  LossScaler scaler_;
  torch::Tensor loss_nonfinite_;  // this rank, this step: was any micro-step's loss not finite? (bool, on device)
};

}  // namespace dualign::train
