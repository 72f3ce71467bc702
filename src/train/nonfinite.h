// train.nonfinite: what a run does when a step's loss or gradient is not finite on some rank.
//
// The verdict is global without a collective of its own: a rank whose loss is not finite turns its gradient into
// NaN (DistributedOptimizer::backward), and the gradient all-reduce / reduce-scatter carries a NaN or inf from any
// rank into the global gradient norm that every rank computes. The optimizer has then already skipped the update
// on every rank; this policy counts the skip (`train/skipped_steps`) and stops the run:
//   skip   after nonfinite_max_consecutive skipped steps in a row;
//   abort  at the first non-finite step, with a message naming it, before any checkpoint of that step is written
//          (the last checkpoint stays the last good state).
// fp16: a non-finite gradient from a finite loss is the loss scale overflowing, which dynamic loss scaling
// expects (the scale halves and the step is skipped); it counts as skipped but does not trip `abort`.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

namespace dualign::train {

struct TrainSettings;
struct StepReport;

class NonFinitePolicy {
 public:
  explicit NonFinitePolicy(const TrainSettings& s);
  // After every optimizer step (`step` = steps completed, counting this one), identically on every rank.
  // Throws under `abort` or when too many steps in a row were skipped.
  void after_step(int64_t step, const StepReport& report);
  int64_t skipped_steps() const { return skipped_; }

  // Checkpointed (group "nonfinite"): skipped steps in total and in a row at the end of the saved step.
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& state, const std::string& source);

 private:
  bool abort_ = false;
  bool fp16_ = false;
  int64_t max_consecutive_ = 20;
  int64_t skipped_ = 0, consecutive_ = 0;
};

// Test-only fault injection (never set these in a real run): with DUALIGN_TEST_NAN_AT_STEP=k (the k-th optimizer
// step, numbered from 1 like metrics and checkpoints; `step` here is the loop index k - 1) and
// DUALIGN_TEST_NAN_RANK=r (default 0), rank r's loss of that step becomes NaN; with DUALIGN_TEST_NAN_IN=grad its value stays
// finite and its gradient becomes inf instead (what an overflowing fp16 loss scale does). A no-op otherwise.
at::Tensor inject_test_nan(int64_t step, int rank, const at::Tensor& loss);

}  // namespace dualign::train
