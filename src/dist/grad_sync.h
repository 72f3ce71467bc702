// Data-parallel gradient synchronisation in the style of PyTorch DDP's Reducer:
// parameters are broadcast from rank 0; gradients live in flat fp32 buckets (`.grad` are views into them);
// buckets are filled in reverse registration order (the order backward produces gradients) and each
// bucket's all-reduce (average) starts from an autograd post-accumulate hook as soon as its last gradient
// arrives, so communication overlaps the rest of backward. Buckets are launched in a fixed order identical
// on every rank. As DDP does, the first synced backward records the order in which gradients became ready, and
// the next zero_grad() rebuilds the buckets in rank 0's order (models whose registration order is not their
// backward order, e.g. UNets' skip connections, then launch each bucket as soon as it is full). The layout does
// not change any number: the average is elementwise. Gradient accumulation: begin_micro_step(false) on the non-final micro-steps skips the
// communication and keeps accumulating in fp32.
//
//   GradSync sync(comm, params, {});         // broadcasts the parameters
//   for micro-step m: { sync.begin_micro_step(m == last); loss.backward(); }
//   sync.finish();  optimizer.step();  sync.zero_grad();
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "dist/comm.h"

namespace dualign::dist {

struct GradSyncOptions {
  int64_t bucket_cap_bytes = 25 << 20;   // DDP's default cap
  int64_t first_bucket_bytes = 1 << 20;  // small bucket for the first-defined (last-ready) parameters
  bool overlap = true;                   // false: every bucket is all-reduced in finish(), after backward
  bool broadcast_at_start = true;
  // dtype on the wire (dist.reduce_dtype): kBFloat16 all-reduces a bf16 copy of each bucket (half the bytes with
  // NCCL; the MPI backend reduces bf16 through float32) and folds the result back into the fp32 bucket.
  at::ScalarType reduce_dtype = at::kFloat;
  bool rebuild_buckets = true;  // rebuild from the first synced backward's gradient-ready order
};

// Bucket assignment (pure, unit-tested): parameters in registration order are packed greedily, the first
// bucket capped at first_bucket_bytes and the rest at bucket_cap_bytes (by fp32 bytes), and the list of
// buckets is reversed, so bucket 0 holds the last-registered parameters (first ready in backward).
std::vector<std::vector<size_t>> assign_buckets(const std::vector<int64_t>& numels, int64_t first_bucket_bytes,
                                                int64_t bucket_cap_bytes);
// The same packing for a known gradient-ready order (`ready_order`: parameter indices, first ready first, each
// parameter once): bucket 0 holds the first-ready parameters, the last bucket (first_bucket_bytes) the last-ready.
std::vector<std::vector<size_t>> assign_buckets_in_ready_order(const std::vector<int64_t>& numels,
                                                               const std::vector<size_t>& ready_order,
                                                               int64_t first_bucket_bytes, int64_t bucket_cap_bytes);

class GradSync {
 public:
  GradSync(Comm& comm, std::vector<at::Tensor> params, GradSyncOptions options = {});
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Before each backward: sync=false on non-final micro-steps (accumulate locally), true on the last one.
  // Without gradient accumulation never call it (every backward syncs).
  void begin_micro_step(bool sync);
  void finish();     // after a syncing backward: wait for every bucket; .grad = average over ranks

  void zero_grad();                  // zero the buckets (instead of optimizer.zero_grad)

  size_t num_buckets() const { return buckets_.size(); }
  const std::vector<size_t>& bucket_params(size_t b) const { return buckets_[b].params; }
  int64_t bucket_bytes() const;        // fp32 bytes in all buckets
  double last_finish_wait_s() const { return last_finish_wait_s_; }  // time finish() spent blocked
  // Buckets whose all-reduce started from a backward hook (not from finish()) in the last synced step.
  size_t last_launched_during_backward() const { return last_launched_during_backward_; }
  // Of those, the buckets launched while other gradients were still to come (overlapping the rest of backward).
  size_t last_launched_early() const { return last_launched_early_; }
  bool buckets_rebuilt() const { return rebuilt_; }

 private:
  struct Bucket {
    std::vector<size_t> params;
    at::Tensor flat;  // fp32
    at::Tensor wire;  // reduce_dtype copy of flat for the all-reduce (only when reduce_dtype is not fp32)
    int pending = 0;  // gradients still to arrive this backward
    std::unique_ptr<Work> work;
  };
  void build_buckets(const std::vector<std::vector<size_t>>& assignment);
  void rebuild_from_ready_order();  // collective: rank 0's recorded order
  void on_grad_ready(size_t param_index);
  void launch_ready_buckets();  // in bucket order, never skipping one that is not ready

  Comm& comm_;
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> views_;          // per parameter, into its bucket
  std::vector<size_t> bucket_of_;          // per parameter
  std::vector<char> ready_this_backward_;  // per parameter
  std::vector<Bucket> buckets_;
  GradSyncOptions options_;
  bool sync_ = true;
  size_t next_launch_ = 0;
  std::mutex mutex_;  // hooks may run on autograd worker threads
  double last_finish_wait_s_ = 0;
  size_t last_launched_during_backward_ = 0;
  size_t ready_count_ = 0, launched_early_ = 0, last_launched_early_ = 0;
  std::vector<size_t> ready_order_;  // of the first synced backward
  bool order_recorded_ = false, rebuilt_ = false;
};

}  // namespace dualign::dist
