// A training method: per micro-batch, a loss to back-propagate plus named statistics (sums and counts) that
// the trainer all-reduces over ranks. Nothing on the trainer's spine knows which method runs.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "diffusion/schedule.h"
#include "models/score_model.h"
#include "data/batch.h"

namespace dualign::config {
class Section;
}
namespace dualign::dist {
class Comm;
}

namespace dualign::methods {

// What a method returns for one micro-batch. The statistics are additive ("<name>_sum" values and "count") and
// stay on the device as one-element tensors: the trainer sums them there and reads them on the host only at log
// steps, so the micro-step never waits for the device (no .item(): dist/host_sync.h).
struct LossOutput {
  torch::Tensor loss;  // scalar, mean over this rank's micro-batch
  std::vector<std::pair<std::string, torch::Tensor>> stats;

  // "<name>" = the sum of `values` (detached, float64, on their device).
  void add_sum(std::string name, const torch::Tensor& values) {
    stats.emplace_back(std::move(name), values.detach().sum().to(torch::kFloat64));
  }
  // "<name>" = a number the host knows (a count), filled on `device` (no copy from the host to wait for).
  void add_value(std::string name, double value, const torch::Device& device) {
    stats.emplace_back(std::move(name), torch::full({}, value, torch::TensorOptions(torch::kFloat64).device(device)));
  }
};

class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  virtual LossOutput loss(models::ScoreModel& policy, const data::Batch& batch) = 0;

  // Methods with dual variables (constrained alignment, OR composition): every rank calls this after each
  // optimizer step with the number of completed steps. It may all-reduce (a collective) and update the duals
  // identically everywhere; it returns the scalars to log at this step (λ, constraint estimates) or {}.
  virtual std::map<std::string, double> end_step(int64_t step, dist::Comm& comm) { return {}; }
  // Tensors checkpointed under "method/" and restored in place on resume (dual variables, their EMAs).
  virtual std::map<std::string, torch::Tensor> state() { return {}; }
};

struct MethodContext {
  const diffusion::NoiseSchedule& schedule;
  torch::Device device;
  // Builds a fresh copy of the policy's starting point (same config, same init weights): methods that need a
  // frozen reference call it once and freeze the result.
  std::function<std::shared_ptr<models::ScoreModel>()> build_reference;
  // For statistics a loss needs from the whole global batch (KTO's reference point). May be null in tests of
  // methods that do not need it.
  dist::Comm* comm = nullptr;
  // The policy being trained. A LoRA policy's frozen base (ScoreModel::base_view) is the reference, so
  // build_reference is not called for it. May be null (then the reference is always built).
  std::shared_ptr<models::ScoreModel> policy = nullptr;
};

// Builds the method named by `method.name` (strict: unknown keys are errors).
std::unique_ptr<Method> make_method(const config::Section& method, const MethodContext& ctx);

}  // namespace dualign::methods
