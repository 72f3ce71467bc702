#pragma once
#include "methods/method.h"

namespace dualign::methods {

class Sft : public Method {
 public:
  explicit Sft(const MethodContext& ctx);
  std::string name() const override { return "sft"; }
  LossOutput loss(ScoreModel& policy, const Batch& batch) override;

 private:
  const diffusion::NoiseSchedule& schedule_;
  torch::Device device_;
};

}  // namespace dualign::methods
