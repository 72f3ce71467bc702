#include "dist/zero.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

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

namespace {

std::vector<int64_t> numels_of(const std::vector<at::Tensor>& params) {
  std::vector<int64_t> numels;
  for (const auto& p : params) numels.push_back(p.numel());
  return numels;
}

}  // namespace

ZeroAdamW::ZeroAdamW(Comm& comm, std::vector<at::Tensor> params, AdamWConfig config, ZeroOptions options)
    : comm_(comm),
      config_(config),
      layout_(make_shard_layout(numels_of(params), comm.size())),
      buffers_(comm, std::move(params), layout_.offsets, layout_.shard, options) {  // broadcasts rank 0's params
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(comm_.device());
  master_ = buffers_.master_slot();
  exp_avg_ = torch::zeros({layout_.shard}, f32);
  exp_avg_sq_ = torch::zeros({layout_.shard}, f32);
}

ZeroAdamW::~ZeroAdamW() = default;

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

void ZeroAdamW::zero_grad() { buffers_.zero_grad(); }

double ZeroAdamW::step(double max_grad_norm, double unscale) {
  torch::NoGradGuard no_grad;
  const double norm = buffers_.reduce_gradients(max_grad_norm, unscale);
  if (!std::isfinite(norm)) return norm;  // every rank got the same NaN/inf: no rank updates
  ++step_;
  // AdamW exactly as torch::optim::AdamW computes it (decoupled weight decay, bias-corrected moments).
  const auto& c = config_;
  const auto& grad = buffers_.grad_slot();
  if (c.weight_decay != 0) master_.mul_(1 - c.lr * c.weight_decay);
  exp_avg_.mul_(c.beta1).add_(grad, 1 - c.beta1);
  exp_avg_sq_.mul_(c.beta2).addcmul_(grad, grad, 1 - c.beta2);
  const double bias_correction1 = 1 - std::pow(c.beta1, static_cast<double>(step_));
  const double bias_correction2 = 1 - std::pow(c.beta2, static_cast<double>(step_));
  auto denom = (exp_avg_sq_.sqrt() / std::sqrt(bias_correction2)).add_(c.eps);
  master_.addcdiv_(exp_avg_, denom, -c.lr / bias_correction1);
  // Padding must stay zero so every rank's gather is exact (its grad, m and v are zero already).
  const int64_t real = layout_.real_in_shard(comm_.rank());
  if (real < layout_.shard) master_.narrow(0, real, layout_.shard - real).zero_();
  buffers_.gather_parameters(master_);
  return norm;
}

}  // namespace dualign::dist
