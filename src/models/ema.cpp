#include "models/ema.h"

#include "util/error.h"

namespace dualign::models {

EMA::EMA(const torch::nn::Module& module, double decay, bool use_warmup) : decay_(decay), use_warmup_(use_warmup) {
  DUALIGN_CHECK(decay >= 0 && decay <= 1, "ema.decay must be in [0, 1], got {}", decay);
  torch::NoGradGuard no_grad;
  for (const auto& p : module.named_parameters()) shadow_[p.key()] = p.value().detach().to(torch::kFloat32).clone();
  for (const auto& b : module.named_buffers()) shadow_[b.key()] = b.value().detach().clone();
}

double EMA::current_decay() const {
  if (!use_warmup_) return decay_;
  const double t = double(step_);
  return std::min(decay_, (1 + t) / (10 + t));
}

void EMA::update(const torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  const double d = current_decay();
  for (const auto& p : module.named_parameters()) {
    auto it = shadow_.find(p.key());
    DUALIGN_CHECK(it != shadow_.end(), "EMA: parameter '{}' not in the EMA state", p.key());
    if (!p.value().requires_grad()) {
      it->second.copy_(p.value());
      continue;
    }
    it->second.mul_(d).add_(p.value().detach().to(torch::kFloat32), 1 - d);  // s = d s + (1 - d) p
  }
  for (const auto& b : module.named_buffers()) shadow_.at(b.key()).copy_(b.value());
  ++step_;
}

void EMA::copy_to(torch::nn::Module& module) const {
  torch::NoGradGuard no_grad;
  for (auto& p : module.named_parameters()) {
    auto it = shadow_.find(p.key());
    DUALIGN_CHECK(it != shadow_.end(), "EMA: parameter '{}' not in the EMA state", p.key());
    p.value().copy_(it->second);
  }
  for (auto& b : module.named_buffers()) b.value().copy_(shadow_.at(b.key()));
}

void EMA::load_state(const std::map<std::string, torch::Tensor>& shadow, int64_t num_updates) {
  for (auto& [name, t] : shadow_) {
    auto it = shadow.find(name);
    DUALIGN_CHECK(it != shadow.end(), "EMA state: missing tensor '{}'", name);
    DUALIGN_CHECK(it->second.sizes() == t.sizes(), "EMA state: '{}' has shape {}, expected {}", name,
                  c10::str(it->second.sizes()), c10::str(t.sizes()));
    t.copy_(it->second);
  }
  step_ = num_updates;
}

}  // namespace dualign::models
