#include "dist/adafactor.h"

#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace dualign::dist {

void AdafactorConfig::validate() const {
  DUALIGN_CHECK(!relative_step && !warmup_init,
                "Adafactor: relative_step / warmup_init (a step size derived from the step count) are not supported: "
                "the step size is train.lr under train.lr_schedule, as transformers' relative_step=False");
  DUALIGN_CHECK(lr > 0, "Adafactor: lr must be positive, got {}", lr);
  DUALIGN_CHECK(eps1 >= 0 && eps2 >= 0, "Adafactor: eps must be >= 0, got [{}, {}]", eps1, eps2);
  DUALIGN_CHECK(clip_threshold > 0, "Adafactor: clip_threshold must be positive, got {}", clip_threshold);
  DUALIGN_CHECK(decay_rate < 0, "Adafactor: decay_rate must be negative (beta2 = 1 - step^decay_rate), got {}",
                decay_rate);
  DUALIGN_CHECK(beta1 >= 0 && beta1 < 1, "Adafactor: beta1 must be in [0, 1) (0: no first moment), got {}", beta1);
  DUALIGN_CHECK(weight_decay >= 0, "Adafactor: weight_decay must be >= 0, got {}", weight_decay);
}

bool adafactor_factored(at::IntArrayRef sizes) { return sizes.size() >= 2; }

int64_t adafactor_state_numel(at::IntArrayRef sizes, bool first_moment) {
  int64_t numel = 1;
  for (auto s : sizes) numel *= s;
  int64_t n = first_moment ? numel : 0;
  if (!adafactor_factored(sizes)) return n + numel;
  const int64_t rows = sizes[sizes.size() - 2], cols = sizes[sizes.size() - 1];
  // row statistic: numel / cols elements; col statistic: numel / rows (zero-sized tensors have no state to speak of)
  if (rows == 0 || cols == 0) return n;
  return n + numel / cols + numel / rows;
}

AdafactorState make_adafactor_state(at::IntArrayRef sizes, const at::TensorOptions& fp32, bool first_moment) {
  AdafactorState s;
  if (first_moment) s.exp_avg = torch::zeros(sizes, fp32);
  if (adafactor_factored(sizes)) {
    std::vector<int64_t> row(sizes.begin(), sizes.end() - 1);
    std::vector<int64_t> col(sizes.begin(), sizes.end() - 2);
    col.push_back(sizes.back());
    s.exp_avg_sq_row = torch::zeros(row, fp32);
    s.exp_avg_sq_col = torch::zeros(col, fp32);
  } else {
    s.exp_avg_sq = torch::zeros(sizes, fp32);
  }
  return s;
}

namespace {

at::Tensor rms(const at::Tensor& t) { return t.norm(2) / std::sqrt(static_cast<double>(t.numel())); }

}  // namespace

void adafactor_update(at::Tensor& param, const at::Tensor& grad_in, AdafactorState& st, const AdafactorConfig& c) {
  torch::NoGradGuard no_grad;
  // Operation for operation as transformers.optimization.Adafactor.step, so rounding matches as closely as it can.
  const auto grad = grad_in.scalar_type() == at::kFloat ? grad_in : grad_in.to(at::kFloat);
  st.step += 1;
  double lr = c.lr, decay = -c.weight_decay * c.lr;
  if (c.scale_parameter) {
    // transformers' max(eps2, RMS) keeps RMS a float32 tensor, so the step size and the decay factor are float32
    // products; rounding them the same way makes the two bitwise equal.
    const auto param_rms = rms(param);
    if (param_rms.item<double>() > c.eps2) {
      const auto scaled = param_rms * c.lr;
      lr = scaled.item<double>();
      decay = (scaled * -c.weight_decay).item<double>();
    } else {
      lr = c.eps2 * c.lr;
      decay = -c.weight_decay * lr;
    }
  }
  const double beta2t = 1.0 - std::pow(static_cast<double>(st.step), c.decay_rate);
  auto update = grad.pow(2) + c.eps1;
  if (st.exp_avg_sq_row.defined()) {
    st.exp_avg_sq_row.mul_(beta2t).add_(update.mean(-1), 1.0 - beta2t);
    st.exp_avg_sq_col.mul_(beta2t).add_(update.mean(-2), 1.0 - beta2t);
    // grad^2's running mean approximated by the outer product of the row and column statistics
    auto r_factor = (st.exp_avg_sq_row / st.exp_avg_sq_row.mean(-1, /*keepdim=*/true)).rsqrt_().unsqueeze(-1);
    auto c_factor = st.exp_avg_sq_col.unsqueeze(-2).rsqrt();
    update = torch::mul(r_factor, c_factor);
    update.mul_(grad);
  } else {
    st.exp_avg_sq.mul_(beta2t).add_(update, 1.0 - beta2t);
    update = st.exp_avg_sq.rsqrt().mul_(grad);
  }
  update.div_((rms(update) / c.clip_threshold).clamp_(1.0));
  update.mul_(lr);
  if (st.exp_avg.defined()) {
    st.exp_avg.mul_(c.beta1).add_(update, 1 - c.beta1);
    update = st.exp_avg;
  }
  if (c.weight_decay != 0) param.add_(param, decay);
  param.add_(-update);
}

void put_adafactor_state(const AdafactorState& s, const std::string& prefix, std::map<std::string, at::Tensor>& out) {
  out[prefix + "step"] = torch::tensor(s.step, torch::kInt64);
  if (s.exp_avg.defined()) out[prefix + "exp_avg"] = s.exp_avg;
  if (s.exp_avg_sq_row.defined()) {
    out[prefix + "exp_avg_sq_row"] = s.exp_avg_sq_row;
    out[prefix + "exp_avg_sq_col"] = s.exp_avg_sq_col;
  }
  if (s.exp_avg_sq.defined()) out[prefix + "exp_avg_sq"] = s.exp_avg_sq;
}

void load_adafactor_state(AdafactorState& s, const std::string& prefix, const std::map<std::string, at::Tensor>& in,
                          const std::string& source) {
  auto get = [&](const std::string& name) -> const at::Tensor& {
    auto it = in.find(prefix + name);
    if (it == in.end())
      fail("{}: Adafactor state '{}{}' is missing (was the checkpoint written with another train.optimizer or "
           "train.adafactor.beta1?)", source, prefix, name);
    return it->second;
  };
  torch::NoGradGuard no_grad;
  auto restore = [&](at::Tensor& into, const std::string& name) {
    if (!into.defined()) return;
    const auto& saved = get(name);
    DUALIGN_CHECK(saved.sizes() == into.sizes(), "{}: Adafactor state '{}{}' has shape {}, expected {}", source, prefix,
                  name, saved.sizes().vec(), into.sizes().vec());
    into.copy_(saved);
  };
  s.step = get("step").item<int64_t>();
  restore(s.exp_avg, "exp_avg");
  restore(s.exp_avg_sq_row, "exp_avg_sq_row");
  restore(s.exp_avg_sq_col, "exp_avg_sq_col");
  restore(s.exp_avg_sq, "exp_avg_sq");
}

Adafactor::Adafactor(std::vector<at::Tensor> params, AdafactorConfig config)
    : params_(std::move(params)), config_(config) {
  config_.validate();
  for (const auto& p : params_) {
    DUALIGN_CHECK(p.scalar_type() == at::kFloat, "Adafactor: parameters must be fp32 (the master weights), got {}",
                  c10::toString(p.scalar_type()));
    states_.push_back(make_adafactor_state(p.sizes(), p.options(), config_.beta1 > 0));
  }
}

void Adafactor::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& grad = params_[i].grad();
    if (!grad.defined()) continue;
    auto p = params_[i].detach();
    adafactor_update(p, grad, states_[i], config_);
  }
}

int64_t Adafactor::state_bytes() const {
  int64_t n = 0;
  for (const auto& s : states_)
    for (const auto* t : {&s.exp_avg, &s.exp_avg_sq_row, &s.exp_avg_sq_col, &s.exp_avg_sq})
      if (t->defined()) n += t->nbytes();
  return n;
}

}  // namespace dualign::dist
