// The parameter update seen by the trainer, hiding how gradients are synchronised:
//   zero_stage 0: DDP-style GradSync (bucketed all-reduce overlapped with backward) + torch AdamW
//   zero_stage 1: ZeRO-1 AdamW (reduce-scatter gradients, update this rank's shard, all-gather parameters)
//   zero_stage 2: ZeRO-2 (gradients reduce-scattered after every backward into an fp32 shard accumulator)
//
//   opt.zero_grad();
//   for micro in 0..A-1: { opt.begin_micro_step(micro == A-1); loss.backward(); }
//   double grad_norm = opt.step(lr);
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dist/comm.h"

namespace dualign::dist {
class GradSync;
class ZeroAdamW;
}  // namespace dualign::dist

namespace dualign::train {

struct TrainSettings;

class DistributedOptimizer {
 public:
  DistributedOptimizer(dist::Comm& comm, std::vector<torch::Tensor> params, const TrainSettings& s);
  ~DistributedOptimizer();

  void zero_grad();
  void begin_micro_step(bool last);
  // Synchronises gradients, clips them to train.grad_clip (global norm) and updates the parameters.
  // Returns the global gradient norm before clipping.
  double step(double lr);

  // Checkpointing. Unsharded (DDP) state: AdamW moments and steps by parameter name. Sharded (ZeRO) state:
  // this rank's master/exp_avg/exp_avg_sq shard and the step count, restorable at the same world size.
  bool sharded() const { return zero_ != nullptr; }
  std::map<std::string, torch::Tensor> shard_state() const;
  void load_shard_state(const std::map<std::string, torch::Tensor>& state, const std::string& source);
  std::map<std::string, torch::Tensor> state(const torch::nn::Module& module) const;
  void load_state(const torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state,
                  const std::string& source);

 private:
  std::vector<torch::Tensor> params_;
  double grad_clip_ = 0;
  std::unique_ptr<dist::GradSync> sync_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
  std::unique_ptr<dist::ZeroAdamW> zero_;
};

}  // namespace dualign::train
