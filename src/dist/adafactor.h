// Adafactor (Shazeer & Stern 2018) as transformers.optimization.Adafactor computes it, with fp32 state:
//   a tensor with >= 2 dims keeps the running mean of grad^2 + eps1 factored over its last two dims (a "row"
//   statistic, the mean over the last dim, and a "col" statistic, the mean over the second-to-last dim); a 1-D
//   tensor keeps it unfactored. beta2 follows 1 - step^decay_rate. The update grad / sqrt(v) is divided by
//   max(1, RMS(update) / clip_threshold), scaled by the step size, optionally averaged with beta1 (first
//   moment), and weight decay subtracts weight_decay * step size * param before the update.
// transformers' relative_step / warmup_init (a step size made up from the step count) are not supported: dualign's
// train.lr and train.lr_schedule give the step size (AdafactorConfig::validate says so).
//
// adafactor_update is the per-tensor rule; Adafactor applies it to a list of parameters (DDP: every rank updates
// everything); dist::ZeroAdafactor (zero_adafactor.h) applies it to the parameters a rank owns.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dualign::dist {

struct AdafactorConfig {
  double lr = 1e-3;
  double eps1 = 1e-30;            // added to grad^2 (transformers' eps[0])
  double eps2 = 1e-3;             // lower bound of the parameter RMS under scale_parameter (eps[1])
  double clip_threshold = 1.0;    // RMS bound of the update
  double decay_rate = -0.8;       // beta2 at step t = 1 - t^decay_rate
  double beta1 = 0;               // 0: no first moment (transformers' beta1=None)
  double weight_decay = 0;
  bool scale_parameter = false;   // step size x max(eps2, RMS(param))
  bool relative_step = false;     // not supported (validate() explains)
  bool warmup_init = false;       // not supported
  // Throws a clear error for settings this implementation does not support or that make no sense.
  void validate() const;
};

// One parameter's state (fp32). Factored: row has the shape without the last dim, col without the second-to-last.
struct AdafactorState {
  int64_t step = 0;
  at::Tensor exp_avg;                 // beta1 > 0 only
  at::Tensor exp_avg_sq_row, exp_avg_sq_col;  // >= 2-D
  at::Tensor exp_avg_sq;              // 1-D (and 0-D)
};

bool adafactor_factored(at::IntArrayRef sizes);
// fp32 elements of the state of a parameter of these sizes (what the planner budgets).
int64_t adafactor_state_numel(at::IntArrayRef sizes, bool first_moment);
AdafactorState make_adafactor_state(at::IntArrayRef sizes, const at::TensorOptions& fp32, bool first_moment);

// One step for one tensor: `param` is fp32 and updated in place; `grad` has its shape (any float dtype).
void adafactor_update(at::Tensor& param, const at::Tensor& grad, AdafactorState& state, const AdafactorConfig& c);

// Checkpoint form of a state: "<prefix>step" (int64 scalar) and "<prefix>exp_avg_sq_row", ... (the tensors it has).
void put_adafactor_state(const AdafactorState& state, const std::string& prefix, std::map<std::string, at::Tensor>& out);
// Restores into `state` (made by make_adafactor_state for the same parameter); errors name `source` and the key.
void load_adafactor_state(AdafactorState& state, const std::string& prefix, const std::map<std::string, at::Tensor>& in,
                          const std::string& source);

// Unsharded Adafactor over a list of parameters (they must be fp32, like dualign's master weights). A parameter
// without a gradient is skipped and its step count does not advance, as in transformers.
class Adafactor {
 public:
  Adafactor(std::vector<at::Tensor> params, AdafactorConfig config);
  void step();
  void set_lr(double lr) { config_.lr = lr; }
  const AdafactorConfig& config() const { return config_; }
  const std::vector<at::Tensor>& params() const { return params_; }
  // State of params()[i] (created with the optimizer, all zeros until the first step).
  AdafactorState& state(size_t i) { return states_[i]; }
  const AdafactorState& state(size_t i) const { return states_[i]; }
  int64_t state_bytes() const;

 private:
  std::vector<at::Tensor> params_;
  AdafactorConfig config_;
  std::vector<AdafactorState> states_;
};

}  // namespace dualign::dist
