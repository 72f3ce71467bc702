#include "dist/zero.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "dist/grad_buffer.h"
#include "util/error.h"

namespace dualign::dist {

ShardLayout make_shard_layout(const std::vector<int64_t>& numels, int world_size) {
  DUALIGN_CHECK(world_size >= 1, "shard layout: world size {} must be >= 1", world_size);
  ShardLayout l;
  l.world_size = world_size;
  for (int64_t n : numels) {
    l.offsets.push_back(l.total);
    l.total += n;
  }
  l.shard = (l.total + world_size - 1) / world_size;
  l.padded = l.shard * world_size;
  return l;
}

int64_t ShardLayout::real_in_shard(int rank) const {
  return std::clamp<int64_t>(total - shard_begin(rank), 0, shard);
}

ZeroAdamW::ZeroAdamW(Comm& comm, std::vector<at::Tensor> params, AdamWConfig config, ZeroOptions options)
    : comm_(comm), params_(std::move(params)), config_(config), options_(options) {
  DUALIGN_CHECK(!params_.empty(), "ZeroAdamW: no parameters given");
  DUALIGN_CHECK(options_.stage == 1 || options_.stage == 2, "ZeroAdamW: stage {} (supported: 1, 2)", options_.stage);
  if (options_.broadcast_at_start) broadcast_tensors(comm_, params_, 0);
  std::vector<int64_t> numels;
  at::ScalarType param_dtype = params_[0].scalar_type();
  for (const auto& p : params_) {
    numels.push_back(p.numel());
    if (p.scalar_type() != param_dtype) param_dtype = at::kFloat;  // mixed dtypes: fp32 buffers
  }
  layout_ = make_shard_layout(numels, comm_.size());
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(comm_.device());
  const auto grad_dtype = options_.stage == 2 ? param_dtype : at::kFloat;
  flat_grad_ = torch::zeros({layout_.padded}, f32.dtype(grad_dtype));
  flat_params_ = torch::zeros({layout_.padded}, f32.dtype(param_dtype));
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i)
      flat_params_.narrow(0, layout_.offsets[i], params_[i].numel()).copy_(params_[i].detach().reshape({-1}));
  }
  shard_grad_ = torch::zeros({layout_.shard}, f32);
  master_ = flat_params_.narrow(0, layout_.shard_begin(comm_.rank()), layout_.shard).to(at::kFloat).clone();
  exp_avg_ = torch::zeros({layout_.shard}, f32);
  exp_avg_sq_ = torch::zeros({layout_.shard}, f32);
  ready_.assign(params_.size(), 0);
  for (size_t i = 0; i < params_.size(); ++i) {
    grad_views_.push_back(alias_slice(flat_grad_, layout_.offsets[i], params_[i].sizes()));
    attach_grad_view(params_[i], grad_views_[i], [this, i] { on_grad_ready(i); });
  }
}

ZeroAdamW::~ZeroAdamW() {
  for (const auto& p : params_) remove_grad_hook(p);
}

void ZeroAdamW::restore_shard(const at::Tensor& master, const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq,
                              int64_t step_count) {
  for (const auto* t : {&master, &exp_avg, &exp_avg_sq})
    DUALIGN_CHECK(t->numel() == layout_.shard, "ZeRO shard restore: a saved shard has {} elements, this rank's shard "
                  "has {} (was the checkpoint written with another world size or model?)", t->numel(), layout_.shard);
  at::NoGradGuard no_grad;
  master_.copy_(master.reshape({-1}));
  exp_avg_.copy_(exp_avg.reshape({-1}));
  exp_avg_sq_.copy_(exp_avg_sq.reshape({-1}));
  step_ = step_count;
}

int64_t ZeroAdamW::moment_bytes() const { return (exp_avg_.numel() + exp_avg_sq_.numel()) * 4; }
int64_t ZeroAdamW::state_bytes() const { return moment_bytes() + master_.numel() * 4; }
int64_t ZeroAdamW::accumulated_grad_bytes() const {
  return options_.stage == 1 ? flat_grad_.nbytes() : shard_grad_.nbytes();
}

void ZeroAdamW::on_grad_ready(size_t i) {
  if (options_.stage != 2 || ready_[i]) return;
  ready_[i] = 1;
  // The last gradient of this backward: every rank reaches this point once per backward, in step.
  if (++ready_count_ == params_.size()) {
    reduce_scatter_into_accumulator();
    ++reductions_during_backward_;
  }
}

void ZeroAdamW::reduce_scatter_into_accumulator() {
  torch::NoGradGuard no_grad;
  const auto wire = options_.reduce_dtype == at::kFloat ? flat_grad_.scalar_type() : options_.reduce_dtype;
  auto part = torch::empty({layout_.shard}, flat_grad_.options().dtype(wire));
  comm_.reduce_scatter(part, flat_grad_.to(wire), ReduceOp::sum);
  shard_grad_.add_(part.to(at::kFloat));  // fp32 accumulation of the sharded gradient
  flat_grad_.zero_();
  std::fill(ready_.begin(), ready_.end(), 0);
  ready_count_ = 0;
  for (size_t i = 0; i < params_.size(); ++i) reset_grad_to_view(params_[i], grad_views_[i]);
}

void ZeroAdamW::zero_grad() {
  flat_grad_.zero_();
  shard_grad_.zero_();
  std::fill(ready_.begin(), ready_.end(), 0);
  ready_count_ = 0;
  for (size_t i = 0; i < params_.size(); ++i) reset_grad_to_view(params_[i], grad_views_[i]);
}

double ZeroAdamW::step(double max_grad_norm, double unscale) {
  torch::NoGradGuard no_grad;
  if (options_.stage == 1) {
    if (options_.reduce_dtype == at::kFloat) {
      comm_.reduce_scatter(shard_grad_, flat_grad_, ReduceOp::avg);
    } else {
      auto part = torch::empty({layout_.shard}, flat_grad_.options().dtype(options_.reduce_dtype));
      comm_.reduce_scatter(part, flat_grad_.to(options_.reduce_dtype), ReduceOp::avg);
      shard_grad_.copy_(part);
    }
  } else {
    // A backward in which some parameters got no gradient never triggered the reduction: do it now.
    // (Every rank sees the same graph, so all ranks take this branch together.)
    if (ready_count_ > 0) reduce_scatter_into_accumulator();
    shard_grad_.div_(comm_.size());
  }
  if (unscale != 1) shard_grad_.mul_(unscale);
  // Global norm from the shards (padding is zero); one scalar all-reduce.
  const double norm = std::sqrt(comm_.all_reduce_double(shard_grad_.square().sum().item<double>()));
  if (!std::isfinite(norm)) return norm;  // every rank got the same NaN/inf: no rank updates
  if (max_grad_norm > 0) {
    const double coef = max_grad_norm / (norm + 1e-6);
    if (coef < 1) shard_grad_.mul_(coef);
  }
  ++step_;
  // AdamW exactly as torch::optim::AdamW computes it (decoupled weight decay, bias-corrected moments).
  const auto& c = config_;
  if (c.weight_decay != 0) master_.mul_(1 - c.lr * c.weight_decay);
  exp_avg_.mul_(c.beta1).add_(shard_grad_, 1 - c.beta1);
  exp_avg_sq_.mul_(c.beta2).addcmul_(shard_grad_, shard_grad_, 1 - c.beta2);
  const double bias_correction1 = 1 - std::pow(c.beta1, static_cast<double>(step_));
  const double bias_correction2 = 1 - std::pow(c.beta2, static_cast<double>(step_));
  auto denom = (exp_avg_sq_.sqrt() / std::sqrt(bias_correction2)).add_(c.eps);
  master_.addcdiv_(exp_avg_, denom, -c.lr / bias_correction1);
  // Padding must stay zero so every rank's gather is exact (its grad, m and v are zero already).
  const int64_t real = layout_.real_in_shard(comm_.rank());
  if (real < layout_.shard) master_.narrow(0, real, layout_.shard - real).zero_();
  comm_.all_gather(flat_params_, master_.to(flat_params_.scalar_type()));
  for (size_t i = 0; i < params_.size(); ++i)
    params_[i].detach().copy_(flat_params_.narrow(0, layout_.offsets[i], params_[i].numel()).view(params_[i].sizes()));
  return norm;
}

}  // namespace dualign::dist
