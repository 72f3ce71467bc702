// Exponential moving average of a module's parameters (and copies of its buffers), kept in float32 on the
// module's device. update() after each optimizer step; copy_to() writes the averages into a module (e.g. an
// evaluation copy); state() / load_state() for checkpoints.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

namespace dualign::models {

class EMA {
 public:
  // decay: per-step decay; warmup follows diffusers' EMAModel (decay_t = min(decay, (1 + t) / (10 + t)))
  // when use_warmup is set.
  EMA(const torch::nn::Module& module, double decay = 0.9999, bool use_warmup = true);

  void update(const torch::nn::Module& module);
  void copy_to(torch::nn::Module& module) const;
  double current_decay() const;  // the decay the next update() will use
  int64_t num_updates() const { return step_; }

  const std::map<std::string, torch::Tensor>& state() const { return shadow_; }
  void load_state(const std::map<std::string, torch::Tensor>& shadow, int64_t num_updates);

 private:
  double decay_;
  bool use_warmup_;
  int64_t step_ = 0;
  std::map<std::string, torch::Tensor> shadow_;
};

}  // namespace dualign::models
