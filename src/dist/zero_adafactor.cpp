#include "dist/zero_adafactor.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "dist/grad_buffer.h"
#include "util/error.h"

namespace dualign::dist {

OwnerLayout make_owner_layout(const std::vector<int64_t>& numels, int world_size) {
  DUALIGN_CHECK(world_size >= 1, "owner layout: world size {} must be >= 1", world_size);
  OwnerLayout l;
  l.world_size = world_size;
  l.owner.assign(numels.size(), 0);
  l.load.assign(world_size, 0);
  // Largest first onto the least-loaded rank (ties: the lower index / rank), deterministic on every rank.
  std::vector<size_t> order(numels.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return numels[a] > numels[b]; });
  for (size_t i : order) {
    const int r = static_cast<int>(std::min_element(l.load.begin(), l.load.end()) - l.load.begin());
    l.owner[i] = r;
    l.load[r] += numels[i];
  }
  l.shard = *std::max_element(l.load.begin(), l.load.end());
  l.padded = l.shard * world_size;
  // Within a rank's slot the parameters keep their order.
  std::vector<int64_t> next(world_size);
  for (int r = 0; r < world_size; ++r) next[r] = r * l.shard;
  l.offsets.resize(numels.size());
  for (size_t i = 0; i < numels.size(); ++i) {
    l.offsets[i] = next[l.owner[i]];
    next[l.owner[i]] += numels[i];
  }
  return l;
}

ZeroAdafactor::ZeroAdafactor(Comm& comm, std::vector<at::Tensor> params, AdafactorConfig config, ZeroOptions options)
    : comm_(comm), params_(std::move(params)), config_(config), options_(options) {
  DUALIGN_CHECK(!params_.empty(), "ZeroAdafactor: no parameters given");
  DUALIGN_CHECK(options_.stage == 1 || options_.stage == 2, "ZeroAdafactor: stage {} (supported: 1, 2)",
                options_.stage);
  config_.validate();
  if (options_.broadcast_at_start) broadcast_tensors(comm_, params_, 0);
  std::vector<int64_t> numels;
  at::ScalarType param_dtype = params_[0].scalar_type();
  for (const auto& p : params_) {
    numels.push_back(p.numel());
    if (p.scalar_type() != param_dtype) param_dtype = at::kFloat;  // mixed dtypes: fp32 buffers
  }
  layout_ = make_owner_layout(numels, comm_.size());
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(comm_.device());
  const auto grad_dtype = options_.stage == 2 ? param_dtype : at::kFloat;
  flat_grad_ = torch::zeros({layout_.padded}, f32.dtype(grad_dtype));
  flat_params_ = torch::zeros({layout_.padded}, f32.dtype(param_dtype));
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i)
      flat_params_.narrow(0, layout_.offsets[i], params_[i].numel()).copy_(params_[i].detach().reshape({-1}));
  }
  const int rank = comm_.rank();
  shard_grad_ = torch::zeros({layout_.shard}, f32);
  master_ = flat_params_.narrow(0, rank * layout_.shard, layout_.shard).to(at::kFloat).clone();
  for (size_t i = 0; i < params_.size(); ++i)
    if (layout_.owner[i] == rank) states_[i] = make_adafactor_state(params_[i].sizes(), f32, config_.beta1 > 0);
  ready_.assign(params_.size(), 0);
  for (size_t i = 0; i < params_.size(); ++i) {
    grad_views_.push_back(alias_slice(flat_grad_, layout_.offsets[i], params_[i].sizes()));
    attach_grad_view(params_[i], grad_views_[i], [this, i] { on_grad_ready(i); });
  }
}

ZeroAdafactor::~ZeroAdafactor() {
  for (const auto& p : params_) remove_grad_hook(p);
}

int64_t ZeroAdafactor::state_bytes() const {
  int64_t n = master_.nbytes();
  for (const auto& [i, s] : states_)
    for (const auto* t : {&s.exp_avg, &s.exp_avg_sq_row, &s.exp_avg_sq_col, &s.exp_avg_sq})
      if (t->defined()) n += t->nbytes();
  return n;
}

void ZeroAdafactor::on_grad_ready(size_t i) {
  if (options_.stage != 2 || ready_[i]) return;
  ready_[i] = 1;
  if (++ready_count_ == params_.size()) {  // the last gradient of this backward, on every rank in step
    reduce_scatter_into_accumulator();
    ++reductions_during_backward_;
  }
}

void ZeroAdafactor::reduce_scatter_into_accumulator() {
  torch::NoGradGuard no_grad;
  const auto wire = options_.reduce_dtype == at::kFloat ? flat_grad_.scalar_type() : options_.reduce_dtype;
  auto part = torch::empty({layout_.shard}, flat_grad_.options().dtype(wire));
  comm_.reduce_scatter(part, flat_grad_.to(wire), ReduceOp::sum);
  shard_grad_.add_(part.to(at::kFloat));
  flat_grad_.zero_();
  std::fill(ready_.begin(), ready_.end(), 0);
  ready_count_ = 0;
  for (size_t i = 0; i < params_.size(); ++i) reset_grad_to_view(params_[i], grad_views_[i]);
}

void ZeroAdafactor::zero_grad() {
  flat_grad_.zero_();
  shard_grad_.zero_();
  std::fill(ready_.begin(), ready_.end(), 0);
  ready_count_ = 0;
  for (size_t i = 0; i < params_.size(); ++i) reset_grad_to_view(params_[i], grad_views_[i]);
}

double ZeroAdafactor::step(double max_grad_norm, double unscale) {
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
    if (ready_count_ > 0) reduce_scatter_into_accumulator();  // a backward that left some parameters without grad
    shard_grad_.div_(comm_.size());
  }
  if (unscale != 1) shard_grad_.mul_(unscale);
  const double norm = std::sqrt(comm_.all_reduce_double(shard_grad_.square().sum().item<double>()));
  if (!std::isfinite(norm)) return norm;  // every rank got the same NaN/inf: no rank updates
  if (max_grad_norm > 0) {
    const double coef = max_grad_norm / (norm + 1e-6);
    if (coef < 1) shard_grad_.mul_(coef);
  }
  ++step_;
  const int64_t slot = comm_.rank() * layout_.shard;
  for (auto& [i, state] : states_) {
    const int64_t begin = layout_.offsets[i] - slot;
    auto param = master_.narrow(0, begin, params_[i].numel()).view(params_[i].sizes());
    adafactor_update(param, shard_grad_.narrow(0, begin, params_[i].numel()).view(params_[i].sizes()), state, config_);
  }
  comm_.all_gather(flat_params_, master_.to(flat_params_.scalar_type()));
  for (size_t i = 0; i < params_.size(); ++i)
    params_[i].detach().copy_(flat_params_.narrow(0, layout_.offsets[i], params_[i].numel()).view(params_[i].sizes()));
  return norm;
}

std::map<std::string, at::Tensor> ZeroAdafactor::shard_state() const {
  std::map<std::string, at::Tensor> out{{"master", master_}, {"step", torch::tensor(step_, torch::kInt64)}};
  for (const auto& [i, s] : states_) put_adafactor_state(s, std::to_string(i) + ".", out);
  return out;
}

void ZeroAdafactor::load_shard_state(const std::map<std::string, at::Tensor>& state, const std::string& source) {
  for (const char* key : {"master", "step"})
    if (!state.count(key)) fail("ZeRO Adafactor shard {}: tensor 'optimizer_shard/{}' is missing", source, key);
  DUALIGN_CHECK(state.at("master").numel() == layout_.shard,
                "ZeRO Adafactor shard {}: the saved master slot has {} elements, this rank's has {} (written with "
                "another world size or model?)", source, state.at("master").numel(), layout_.shard);
  torch::NoGradGuard no_grad;
  master_.copy_(state.at("master").reshape({-1}));
  step_ = state.at("step").item<int64_t>();
  for (auto& [i, s] : states_) load_adafactor_state(s, std::to_string(i) + ".", state, source);
}

}  // namespace dualign::dist
