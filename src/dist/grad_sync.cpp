#include "dist/grad_sync.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "dist/grad_buffer.h"
#include "util/error.h"

namespace dualign::dist {

std::vector<std::vector<size_t>> assign_buckets(const std::vector<int64_t>& numels, int64_t first_bucket_bytes,
                                                int64_t bucket_cap_bytes) {
  DUALIGN_CHECK(bucket_cap_bytes > 0 && first_bucket_bytes > 0, "bucket caps must be positive (got {} and {})",
                first_bucket_bytes, bucket_cap_bytes);
  std::vector<std::vector<size_t>> buckets;
  std::vector<size_t> current;
  int64_t bytes = 0;
  for (size_t i = 0; i < numels.size(); ++i) {
    const int64_t cap = buckets.empty() ? first_bucket_bytes : bucket_cap_bytes;
    const int64_t b = numels[i] * 4;
    if (!current.empty() && bytes + b > cap) {
      buckets.push_back(std::move(current));
      current.clear();
      bytes = 0;
    }
    current.push_back(i);
    bytes += b;
  }
  if (!current.empty()) buckets.push_back(std::move(current));
  std::reverse(buckets.begin(), buckets.end());
  return buckets;
}

std::vector<std::vector<size_t>> assign_buckets_in_ready_order(const std::vector<int64_t>& numels,
                                                               const std::vector<size_t>& ready_order,
                                                               int64_t first_bucket_bytes, int64_t bucket_cap_bytes) {
  DUALIGN_CHECK(ready_order.size() == numels.size(), "bucket rebuild: an order of {} parameters for {}",
                ready_order.size(), numels.size());
  // Pack last-ready first, as assign_buckets packs registration order, then map positions back to parameters.
  std::vector<size_t> position_to_param(ready_order.rbegin(), ready_order.rend());
  std::vector<int64_t> packed_numels;
  for (size_t i : position_to_param) packed_numels.push_back(numels.at(i));
  auto buckets = assign_buckets(packed_numels, first_bucket_bytes, bucket_cap_bytes);
  for (auto& bucket : buckets)
    for (auto& k : bucket) k = position_to_param[k];
  return buckets;
}

GradSync::GradSync(Comm& comm, std::vector<at::Tensor> params, GradSyncOptions options)
    : comm_(comm), params_(std::move(params)), options_(options) {
  DUALIGN_CHECK(!params_.empty(), "GradSync: no parameters given");
  if (options_.broadcast_at_start) broadcast_tensors(comm_, params_, 0);
  std::vector<int64_t> numels;
  for (const auto& p : params_) numels.push_back(p.numel());
  views_.resize(params_.size());
  bucket_of_.resize(params_.size());
  ready_this_backward_.assign(params_.size(), 0);
  build_buckets(assign_buckets(numels, options_.first_bucket_bytes, options_.bucket_cap_bytes));
  for (size_t i = 0; i < params_.size(); ++i) attach_grad_view(params_[i], views_[i], [this, i] { on_grad_ready(i); });
  begin_micro_step(true);
}

void GradSync::build_buckets(const std::vector<std::vector<size_t>>& assignment) {
  buckets_.clear();
  buckets_.resize(assignment.size());
  for (size_t b = 0; b < assignment.size(); ++b) {
    auto& bucket = buckets_[b];
    bucket.params = assignment[b];
    int64_t total = 0;
    for (size_t i : bucket.params) total += params_[i].numel();
    bucket.flat = torch::zeros({total}, torch::TensorOptions().dtype(torch::kFloat32).device(comm_.device()));
    if (options_.reduce_dtype != torch::kFloat32) bucket.wire = torch::empty({total}, bucket.flat.options().dtype(options_.reduce_dtype));
    int64_t offset = 0;
    for (size_t i : bucket.params) {
      views_[i] = alias_slice(bucket.flat, offset, params_[i].sizes());
      bucket_of_[i] = b;
      offset += params_[i].numel();
    }
  }
}

void GradSync::rebuild_from_ready_order() {
  // Parameters that took no part in the backward come last, in reverse registration order.
  std::vector<char> seen(params_.size(), 0);
  std::vector<size_t> order = ready_order_;
  for (size_t i : order) seen[i] = 1;
  for (size_t i = params_.size(); i-- > 0;)
    if (!seen[i]) order.push_back(i);
  // Every rank takes rank 0's order, so all launch the same buckets in the same sequence.
  auto shared = torch::tensor(std::vector<int64_t>(order.begin(), order.end()),
                              torch::TensorOptions().dtype(torch::kLong)).to(comm_.device());
  broadcast_tensors(comm_, {shared}, 0);
  shared = shared.cpu();
  const int64_t* from_rank0 = shared.data_ptr<int64_t>();
  for (size_t k = 0; k < order.size(); ++k) order[k] = static_cast<size_t>(from_rank0[k]);
  std::vector<int64_t> numels;
  for (const auto& p : params_) numels.push_back(p.numel());
  // Release the old buckets before allocating the new ones (the hooks and .grad hold views of them).
  for (const auto& p : params_) {
    remove_grad_hook(p);
    const_cast<at::Tensor&>(p).mutable_grad().reset();
  }
  views_.assign(params_.size(), at::Tensor());
  build_buckets(assign_buckets_in_ready_order(numels, order, options_.first_bucket_bytes, options_.bucket_cap_bytes));
  // New hooks with the new views; this also points every .grad into the new buckets.
  for (size_t i = 0; i < params_.size(); ++i) attach_grad_view(params_[i], views_[i], [this, i] { on_grad_ready(i); });
  ready_order_.clear();
  rebuilt_ = true;
}

GradSync::~GradSync() {
  for (auto& b : buckets_)
    if (b.work) b.work->wait();
  for (const auto& p : params_) remove_grad_hook(p);
}

int64_t GradSync::bucket_bytes() const {
  int64_t total = 0;
  for (const auto& b : buckets_) total += b.flat.numel() * 4;
  return total;
}

void GradSync::begin_micro_step(bool sync) {
  std::lock_guard lock(mutex_);
  sync_ = sync;  // stays until changed: one call per accumulation window is enough
  next_launch_ = 0;
  ready_count_ = launched_early_ = 0;
  std::fill(ready_this_backward_.begin(), ready_this_backward_.end(), 0);
  for (auto& b : buckets_) {
    DUALIGN_CHECK(!b.work, "GradSync: begin_micro_step while a bucket is still in flight; call finish() first");
    b.pending = static_cast<int>(b.params.size());
  }
}

void GradSync::on_grad_ready(size_t i) {
  std::lock_guard lock(mutex_);
  if (!sync_ || ready_this_backward_[i]) return;
  ready_this_backward_[i] = 1;
  ++ready_count_;
  if (!order_recorded_) ready_order_.push_back(i);
  --buckets_[bucket_of_[i]].pending;
  if (options_.overlap) launch_ready_buckets();
}

void GradSync::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    auto& b = buckets_[next_launch_++];
    if (ready_count_ < params_.size()) ++launched_early_;
    if (b.wire.defined()) {
      b.wire.copy_(b.flat);
      b.work = comm_.all_reduce_async(b.wire, ReduceOp::avg);
    } else {
      b.work = comm_.all_reduce_async(b.flat, ReduceOp::avg);
    }
  }
}

void GradSync::finish() {
  std::lock_guard lock(mutex_);
  if (!sync_) return;  // non-final micro-step: gradients stay local
  last_launched_during_backward_ = next_launch_;
  last_launched_early_ = launched_early_;
  ready_count_ = params_.size();  // what is launched from here on is not early
  // Parameters that took no part in this backward contribute zeros; launch what is left, in order.
  for (auto& b : buckets_) b.pending = 0;
  launch_ready_buckets();
  const auto start = std::chrono::steady_clock::now();
  for (auto& b : buckets_) {
    if (b.work) b.work->wait();
    b.work.reset();
    if (b.wire.defined()) b.flat.copy_(b.wire);
  }
  last_finish_wait_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  order_recorded_ = true;
  for (size_t i = 0; i < params_.size(); ++i) publish_grad(params_[i], views_[i]);
  // Ready for the next backward (which syncs unless begin_micro_step(false) says otherwise).
  next_launch_ = 0;
  ready_count_ = launched_early_ = 0;
  std::fill(ready_this_backward_.begin(), ready_this_backward_.end(), 0);
  for (auto& b : buckets_) b.pending = static_cast<int>(b.params.size());
}

void GradSync::zero_grad() {
  std::lock_guard lock(mutex_);
  if (options_.rebuild_buckets && order_recorded_ && !rebuilt_) {
    rebuild_from_ready_order();  // fresh zero buckets; every .grad below points into them
    for (auto& b : buckets_) b.pending = static_cast<int>(b.params.size());
  }
  for (auto& b : buckets_) b.flat.zero_();
  for (size_t i = 0; i < params_.size(); ++i) reset_grad_to_view(params_[i], views_[i]);
}

}  // namespace dualign::dist
