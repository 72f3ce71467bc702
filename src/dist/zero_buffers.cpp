#include "dist/zero_buffers.h"

#include <torch/csrc/autograd/engine.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "dist/grad_buffer.h"
#include "util/error.h"

namespace dualign::dist {

std::vector<std::vector<size_t>> assign_flat_buckets(const std::vector<int64_t>& numels,
                                                     const std::vector<int64_t>& offsets, int64_t element_bytes,
                                                     int64_t cap_bytes) {
  DUALIGN_CHECK(cap_bytes > 0, "ZeRO-2 bucket cap must be positive (got {})", cap_bytes);
  DUALIGN_CHECK(numels.size() == offsets.size(), "ZeRO-2 buckets: {} sizes for {} offsets", numels.size(),
                offsets.size());
  std::vector<size_t> order(numels.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return offsets[a] > offsets[b]; });
  std::vector<std::vector<size_t>> buckets;
  int64_t bytes = 0;
  for (size_t i : order) {
    const int64_t b = numels[i] * element_bytes;
    if (buckets.empty() || (bytes > 0 && bytes + b > cap_bytes)) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(i);
    bytes += b;
  }
  return buckets;
}

std::vector<int64_t> slot_counts(int64_t begin, int64_t end, int64_t shard, int world_size) {
  std::vector<int64_t> counts;
  for (int r = 0; r < world_size; ++r)
    counts.push_back(std::max<int64_t>(0, std::min(end, (r + 1) * shard) - std::max(begin, r * shard)));
  return counts;
}

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
  if (options_.stage == 2) build_buckets();
  for (size_t i = 0; i < params_.size(); ++i) {
    grad_views_.push_back(alias_slice(flat_grad_, offsets_[i], params_[i].sizes()));
    attach_grad_view(params_[i], grad_views_[i], [this, i] { on_grad_ready(i); });
  }
}

ZeroFlatBuffers::~ZeroFlatBuffers() {
  for (auto& b : buckets_)
    if (b.work) b.work->wait();
  for (const auto& p : params_) remove_grad_hook(p);
}

void ZeroFlatBuffers::build_buckets() {
  std::vector<int64_t> numels;
  for (const auto& p : params_) numels.push_back(p.numel());
  const auto assignment = assign_flat_buckets(numels, offsets_, flat_grad_.element_size(), options_.bucket_cap_bytes);
  bucket_of_.resize(params_.size());
  buckets_.resize(assignment.size());
  for (size_t k = 0; k < assignment.size(); ++k) {
    auto& b = buckets_[k];
    b.params = assignment[k];
    b.begin = std::numeric_limits<int64_t>::max();
    for (size_t i : b.params) {
      b.begin = std::min(b.begin, offsets_[i]);
      b.end = std::max(b.end, offsets_[i] + numels[i]);
      bucket_of_[i] = k;
    }
    b.counts = slot_counts(b.begin, b.end, shard_, comm_.size());
    b.slot_offset = std::clamp<int64_t>(b.begin - comm_.rank() * shard_, 0, shard_);
    b.pending = b.params.size();
  }
}

at::Tensor ZeroFlatBuffers::master_slot() const {
  return flat_params_.narrow(0, comm_.rank() * shard_, shard_).to(at::kFloat).clone();
}

int64_t ZeroFlatBuffers::accumulated_grad_bytes() const {
  return options_.stage == 1 ? flat_grad_.nbytes() : shard_grad_.nbytes();
}

void ZeroFlatBuffers::on_grad_ready(size_t i) {
  if (options_.stage != 2) return;
  std::lock_guard lock(mutex_);
  if (ready_[i]) return;
  ready_[i] = 1;
  // The first gradient of this backward: finish it when the autograd engine is done (as DDP's reducer does), so
  // every backward ends with its gradients in the slot, whether or not every parameter took part.
  if (ready_count_++ == 0) torch::autograd::Engine::get_default_engine().queue_callback([this] { finish_backward(); });
  --buckets_[bucket_of_[i]].pending;
  if (options_.overlap) launch_ready_buckets();
}

void ZeroFlatBuffers::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) launch(buckets_[next_launch_++]);
}

void ZeroFlatBuffers::launch(Bucket& b) {
  torch::NoGradGuard no_grad;
  if (ready_count_ < params_.size()) ++launched_early_;
  const auto wire = options_.reduce_dtype == at::kFloat ? flat_grad_.scalar_type() : options_.reduce_dtype;
  auto in = flat_grad_.narrow(0, b.begin, b.end - b.begin).to(wire);  // the buffer itself unless cast
  b.part = torch::empty({b.counts[static_cast<size_t>(comm_.rank())]}, flat_grad_.options().dtype(wire));
  b.work = comm_.reduce_scatter_v_async(b.part, in, b.counts, ReduceOp::sum);
}

void ZeroFlatBuffers::finish_backward() {
  std::lock_guard lock(mutex_);
  torch::NoGradGuard no_grad;
  last_launched_early_ = launched_early_;
  ready_count_ = params_.size();  // what is sent from here on is not early
  for (auto& b : buckets_) b.pending = 0;  // parameters outside this backward contribute zeros
  launch_ready_buckets();
  for (auto& b : buckets_) {
    b.work->wait();
    b.work.reset();
    shard_grad_.narrow(0, b.slot_offset, b.part.numel()).add_(b.part.to(at::kFloat));  // fp32 accumulation
    b.part = at::Tensor();
    b.pending = b.params.size();
  }
  flat_grad_.zero_();
  std::fill(ready_.begin(), ready_.end(), 0);
  ready_count_ = next_launch_ = launched_early_ = 0;
  for (size_t i = 0; i < params_.size(); ++i) reset_grad_to_view(params_[i], grad_views_[i]);
  ++reductions_during_backward_;
}

void ZeroFlatBuffers::zero_grad() {
  std::lock_guard lock(mutex_);
  for (auto& b : buckets_) {  // normally idle; after a backward that threw, drop what it had sent
    if (b.work) b.work->wait();
    b.work.reset();
    b.pending = b.params.size();
  }
  flat_grad_.zero_();
  shard_grad_.zero_();
  std::fill(ready_.begin(), ready_.end(), 0);
  ready_count_ = next_launch_ = launched_early_ = 0;
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
    shard_grad_.div_(comm_.size());  // every backward already added its reduced sum (finish_backward)
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
