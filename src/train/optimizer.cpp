#include "train/optimizer.h"

#include <cmath>
#include <limits>

#include "ckpt/state.h"
#include "dist/adafactor.h"
#include "dist/grad_sync.h"
#include "dist/zero.h"
#include "dist/zero_adafactor.h"
#include "train/settings.h"
#include "util/error.h"
#include "util/log.h"

namespace dualign::train {
namespace {

dist::AdafactorConfig adafactor_config(const TrainSettings& s) {
  dist::AdafactorConfig c;
  c.lr = s.lr;
  c.weight_decay = s.weight_decay;
  c.beta1 = s.adafactor.beta1;
  c.decay_rate = s.adafactor.decay_rate;
  c.clip_threshold = s.adafactor.clip_threshold;
  c.eps1 = s.adafactor.eps1;
  c.eps2 = s.adafactor.eps2;
  c.scale_parameter = s.adafactor.scale_parameter;
  return c;
}

}  // namespace

DistributedOptimizer::DistributedOptimizer(dist::Comm& comm, std::vector<torch::Tensor> params,
                                           const TrainSettings& s)
    : comm_(comm), params_(std::move(params)), grad_clip_(s.grad_clip), name_(s.optimizer) {
  DUALIGN_CHECK(name_ == "adamw" || name_ == "adafactor", "train.optimizer '{}' (expected adamw or adafactor)", name_);
  const bool adafactor = name_ == "adafactor";
  if (s.precision == "fp16") scaler_ = LossScaler(s.loss_scale);
  const auto reduce_dtype = s.reduce_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  if (s.zero_stage == 0) {
    dist::GradSyncOptions o;
    o.bucket_cap_bytes = static_cast<int64_t>(s.bucket_mb * (1 << 20));
    o.reduce_dtype = reduce_dtype;
    sync_ = std::make_unique<dist::GradSync>(comm, params_, o);  // broadcasts rank 0's parameters
    if (adafactor)
      adafactor_ = std::make_unique<dist::Adafactor>(params_, adafactor_config(s));
    else
      adamw_ = std::make_unique<torch::optim::AdamW>(
          params_, torch::optim::AdamWOptions(s.lr).betas({s.beta1, s.beta2}).weight_decay(s.weight_decay));
  } else if ((s.zero_stage == 1 || s.zero_stage == 2) && adafactor) {
    dist::ZeroOptions zo;
    zo.stage = s.zero_stage;
    zo.reduce_dtype = reduce_dtype;
    zo.bucket_cap_bytes = static_cast<int64_t>(s.bucket_mb * (1 << 20));
    zero_adafactor_ = std::make_unique<dist::ZeroAdafactor>(comm, params_, adafactor_config(s), zo);
  } else if (s.zero_stage == 1 || s.zero_stage == 2) {
    dist::AdamWConfig c;
    c.lr = s.lr;
    c.beta1 = s.beta1;
    c.beta2 = s.beta2;
    c.weight_decay = s.weight_decay;
    dist::ZeroOptions zo;
    zo.stage = s.zero_stage;
    zo.reduce_dtype = reduce_dtype;
    zo.bucket_cap_bytes = static_cast<int64_t>(s.bucket_mb * (1 << 20));
    zero_ = std::make_unique<dist::ZeroAdamW>(comm, params_, c, zo);  // broadcasts rank 0's parameters
  } else {
    fail("dist.zero_stage={} is not supported (0 = DDP, 1 = ZeRO-1, 2 = ZeRO-2)", s.zero_stage);
  }
}

DistributedOptimizer::~DistributedOptimizer() = default;

void DistributedOptimizer::zero_grad() {
  if (sync_) sync_->zero_grad();
  if (zero_) zero_->zero_grad();
  if (zero_adafactor_) zero_adafactor_->zero_grad();
}

void DistributedOptimizer::begin_micro_step(bool last) {
  if (sync_) sync_->begin_micro_step(last);
}

void DistributedOptimizer::backward(const torch::Tensor& loss) {
  // loss × scale, or × NaN when the loss is not finite: a NaN gradient is how this rank tells the others (the
  // gradient collective carries it into everyone's norm), without a host sync or a collective of its own.
  const auto finite = torch::isfinite(loss.detach());
  loss_nonfinite_ = loss_nonfinite_.defined() ? loss_nonfinite_.logical_or(finite.logical_not()) : finite.logical_not();
  auto factor = torch::full({}, scaler_.scale(), loss.options())
                    .masked_fill(finite.logical_not(), std::numeric_limits<double>::quiet_NaN());
  (loss * factor).backward();
}

StepReport DistributedOptimizer::step(double lr) {
  StepReport report;
  report.loss_scale = scaler_.scale();
  const double unscale = 1.0 / scaler_.scale();  // exact: the scale is a power of two
  if (zero_) {
    zero_->set_lr(lr);
    // reduce-scatter, unscale, clip by the global norm, AdamW on the shard unless not finite, all-gather
    report.grad_norm = zero_->step(grad_clip_, unscale);
  } else if (zero_adafactor_) {
    zero_adafactor_->set_lr(lr);
    report.grad_norm = zero_adafactor_->step(grad_clip_, unscale);
  } else {
    sync_->finish();  // every rank now holds the averaged gradient, so the norm agrees everywhere
    if (scaler_.enabled()) {
      torch::NoGradGuard no_grad;
      for (auto& p : params_)
        if (p.grad().defined()) p.grad().mul_(unscale);
    }
    double max_norm = grad_clip_ > 0 ? grad_clip_ : std::numeric_limits<double>::infinity();
    report.grad_norm = torch::nn::utils::clip_grad_norm_(params_, max_norm);
    if (std::isfinite(report.grad_norm) && adafactor_) {
      adafactor_->set_lr(lr);
      adafactor_->step();
    } else if (std::isfinite(report.grad_norm)) {
      for (auto& group : adamw_->param_groups()) group.options().set_lr(lr);
      adamw_->step();
    }
  }
  report.applied = std::isfinite(report.grad_norm);
  if (!report.applied) {  // the rare path: one scalar all-reduce to tell a bad loss from an overflowing gradient
    const bool mine = loss_nonfinite_.defined() && loss_nonfinite_.item<bool>();
    if (mine) log::warn("rank {}: the loss of this step is not finite", comm_.rank());
    report.nonfinite_loss_ranks = comm_.all_reduce_int64(mine ? 1 : 0);
  }
  loss_nonfinite_ = torch::Tensor();
  scaler_.update(report.applied);
  return report;
}

namespace {

// The index of each of `module`'s parameters in the Adafactor's list, by name (the checkpoint's keys).
std::vector<std::pair<std::string, size_t>> adafactor_names(const dist::Adafactor& opt, const torch::nn::Module& module) {
  std::map<const void*, size_t> index;
  for (size_t i = 0; i < opt.params().size(); ++i) index[opt.params()[i].unsafeGetTensorImpl()] = i;
  std::vector<std::pair<std::string, size_t>> out;
  for (const auto& p : module.named_parameters(true)) {
    auto it = index.find(p.value().unsafeGetTensorImpl());
    if (it != index.end()) out.emplace_back(p.key(), it->second);
  }
  return out;
}

}  // namespace

std::map<std::string, torch::Tensor> DistributedOptimizer::state(const torch::nn::Module& module) const {
  DUALIGN_CHECK(adamw_ || adafactor_, "optimizer state of a sharded (ZeRO) optimizer is per rank");
  if (adamw_) return ckpt::adam_state(*adamw_, module);
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, i] : adafactor_names(*adafactor_, module))
    dist::put_adafactor_state(adafactor_->state(i), name + ".", out);
  return out;
}

void DistributedOptimizer::load_state(const torch::nn::Module& module,
                                      const std::map<std::string, torch::Tensor>& state, const std::string& source) {
  DUALIGN_CHECK(adamw_ || adafactor_, "optimizer state of a sharded (ZeRO) optimizer is per rank");
  if (adamw_) return ckpt::load_adam_state(*adamw_, module, state, source);
  for (const auto& [name, i] : adafactor_names(*adafactor_, module))
    dist::load_adafactor_state(adafactor_->state(i), name + ".", state, source);
}

std::map<std::string, torch::Tensor> DistributedOptimizer::shard_state() const {
  if (zero_adafactor_) return zero_adafactor_->shard_state();
  DUALIGN_CHECK(zero_, "shard_state() needs a ZeRO optimizer");
  return {{"master", zero_->master_shard()},
          {"exp_avg", zero_->exp_avg()},
          {"exp_avg_sq", zero_->exp_avg_sq()},
          {"step", torch::tensor(zero_->step_count(), torch::kInt64)}};
}

void DistributedOptimizer::load_shard_state(const std::map<std::string, torch::Tensor>& state,
                                            const std::string& source) {
  if (zero_adafactor_) return zero_adafactor_->load_shard_state(state, source);
  DUALIGN_CHECK(zero_, "load_shard_state() needs a ZeRO optimizer");
  for (const char* key : {"master", "exp_avg", "exp_avg_sq", "step"})
    if (!state.count(key)) fail("ZeRO shard checkpoint {}: tensor 'optimizer_shard/{}' is missing", source, key);
  zero_->restore_shard(state.at("master"), state.at("exp_avg"), state.at("exp_avg_sq"),
                       state.at("step").item<int64_t>());
}

}  // namespace dualign::train
