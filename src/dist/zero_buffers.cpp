#include "dist/zero_buffers.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "dist/grad_buffer.h"
#include "util/error.h"

namespace dualign::dist {

ZeroFlatBuffers::ZeroFlatBuffers(Comm& comm, std::vector<at::Tensor> params, std::vector<int64_t> offsets,
                                 int64_t shard, ZeroOptions options)
    : comm_(comm), params_(std::move(params)), offsets_(std::move(offsets)), shard_(shard), options_(options) {
  DUALIGN_CHECK(!params_.empty(), "ZeRO: no parameters given");
  DUALIGN_CHECK(options_.stage == 1 || options_.stage == 2, "ZeRO: stage {} (supported: 1, 2)", options_.stage);
  DUALIGN_CHECK(offsets_.size() == params_.size(), "ZeRO: {} offsets for {} parameters", offsets_.size(),
                params_.size());
  if (options_.broadcast_at_start) broadcast_tensors(comm_, params_, 0);
  at::ScalarType param_dtype = params_[0].scalar_type();
  for (const auto& p : params_)
    if (p.scalar_type() != param_dtype) param_dtype = at::kFloat;  // mixed dtypes: fp32 buffers
  const int64_t padded = shard_ * comm_.size();
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(comm_.device());
  const auto grad_dtype = options_.stage == 2 ? param_dtype : at::kFloat;
  flat_grad_ = torch::zeros({padded}, f32.dtype(grad_dtype));
  flat_params_ = torch::zeros({padded}, f32.dtype(param_dtype));
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) {
      DUALIGN_CHECK(offsets_[i] >= 0 && offsets_[i] + params_[i].numel() <= padded,
                    "ZeRO: parameter {} at offset {} does not fit the flat vector of {}", i, offsets_[i], padded);
      flat_params_.narrow(0, offsets_[i], params_[i].numel()).copy_(params_[i].detach().reshape({-1}));
    }
  }
  shard_grad_ = torch::zeros({shard_}, f32);
  ready_.assign(params_.size(), 0);
  for (size_t i = 0; i < params_.size(); ++i) {
    grad_views_.push_back(alias_slice(flat_grad_, offsets_[i], params_[i].sizes()));
    attach_grad_view(params_[i], grad_views_[i], [this, i] { on_grad_ready(i); });
  }
}

ZeroFlatBuffers::~ZeroFlatBuffers() {
  for (const auto& p : params_) remove_grad_hook(p);
}

at::Tensor ZeroFlatBuffers::master_slot() const {
  return flat_params_.narrow(0, comm_.rank() * shard_, shard_).to(at::kFloat).clone();
}

int64_t ZeroFlatBuffers::accumulated_grad_bytes() const {
  return options_.stage == 1 ? flat_grad_.nbytes() : shard_grad_.nbytes();
}

void ZeroFlatBuffers::on_grad_ready(size_t i) {
  if (options_.stage != 2 || ready_[i]) return;
  ready_[i] = 1;
  // The last gradient of this backward: every rank reaches this point once per backward, in step.
  if (++ready_count_ == params_.size()) {
    reduce_scatter_into_accumulator();
    ++reductions_during_backward_;
  }
}

void ZeroFlatBuffers::reduce_scatter_into_accumulator() {
  torch::NoGradGuard no_grad;
  const auto wire = options_.reduce_dtype == at::kFloat ? flat_grad_.scalar_type() : options_.reduce_dtype;
  auto part = torch::empty({shard_}, flat_grad_.options().dtype(wire));
  comm_.reduce_scatter(part, flat_grad_.to(wire), ReduceOp::sum);
  shard_grad_.add_(part.to(at::kFloat));  // fp32 accumulation of the sharded gradient
  flat_grad_.zero_();
  std::fill(ready_.begin(), ready_.end(), 0);
  ready_count_ = 0;
  for (size_t i = 0; i < params_.size(); ++i) reset_grad_to_view(params_[i], grad_views_[i]);
}

void ZeroFlatBuffers::zero_grad() {
  flat_grad_.zero_();
  shard_grad_.zero_();
  std::fill(ready_.begin(), ready_.end(), 0);
  ready_count_ = 0;
  for (size_t i = 0; i < params_.size(); ++i) reset_grad_to_view(params_[i], grad_views_[i]);
}

double ZeroFlatBuffers::reduce_gradients(double max_grad_norm, double unscale) {
  torch::NoGradGuard no_grad;
  if (options_.stage == 1) {
    if (options_.reduce_dtype == at::kFloat) {
      comm_.reduce_scatter(shard_grad_, flat_grad_, ReduceOp::avg);
    } else {
      auto part = torch::empty({shard_}, flat_grad_.options().dtype(options_.reduce_dtype));
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
  // Global norm from the slots (padding is zero); one scalar all-reduce.
  const double norm = std::sqrt(comm_.all_reduce_double(shard_grad_.square().sum().item<double>()));
  if (!std::isfinite(norm)) return norm;  // every rank got the same NaN/inf
  if (max_grad_norm > 0) {
    const double coef = max_grad_norm / (norm + 1e-6);
    if (coef < 1) shard_grad_.mul_(coef);
  }
  return norm;
}

void ZeroFlatBuffers::gather_parameters(const at::Tensor& master) {
  torch::NoGradGuard no_grad;
  comm_.all_gather(flat_params_, master.to(flat_params_.scalar_type()));
  for (size_t i = 0; i < params_.size(); ++i)
    params_[i].detach().copy_(flat_params_.narrow(0, offsets_[i], params_[i].numel()).view(params_[i].sizes()));
}

}  // namespace dualign::dist
