// ZeRO stages 1 and 2 (Rajbhandari et al. 2020; src/dist/README.md) with AdamW. All parameters form one flat vector padded to a
// multiple of the world size; rank r owns [r*shard, (r+1)*shard) and keeps the fp32 master, m and v of
// that shard only. step() all-gathers the updated parameters back into every rank's model. The gradient buffers,
// the stage-1/2 reductions and the all-gather are ZeroFlatBuffers' (zero_buffers.h).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "dist/comm.h"
#include "dist/zero_buffers.h"

namespace dualign::dist {

// Flat layout (pure, unit-tested).
struct ShardLayout {
  int64_t total = 0;   // sum of parameter numels
  int64_t padded = 0;  // total rounded up to a multiple of world_size
  int64_t shard = 0;   // padded / world_size
  int world_size = 1;
  std::vector<int64_t> offsets;  // start of each parameter in the flat vector
  int64_t shard_begin(int rank) const { return rank * shard; }
  // Elements of [shard_begin(rank), +shard) that belong to real parameters (the rest is padding).
  int64_t real_in_shard(int rank) const;
};
ShardLayout make_shard_layout(const std::vector<int64_t>& numels, int world_size);

struct AdamWConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;  // torch::optim::AdamW defaults
};

class ZeroAdamW {
 public:
  ZeroAdamW(Comm& comm, std::vector<at::Tensor> params, AdamWConfig config, ZeroOptions options = {});
  ~ZeroAdamW();
  ZeroAdamW(const ZeroAdamW&) = delete;
  ZeroAdamW& operator=(const ZeroAdamW&) = delete;

  // After the last micro-step's backward (collective: every rank calls it). The averaged gradient is multiplied
  // by `unscale` (1 / the fp16 loss scale) and, with max_grad_norm > 0, clipped to that global L2 norm (as
  // torch::nn::utils::clip_grad_norm_). Returns the global gradient norm before clipping. When that norm is not
  // finite (a NaN/inf on any rank reaches every rank through the reductions) nothing is updated on any rank.
  double step(double max_grad_norm = 0, double unscale = 1);
  void zero_grad();  // start a new accumulation window
  void set_lr(double lr) { config_.lr = lr; }
  int64_t step_count() const { return step_; }
  int stage() const { return buffers_.stage(); }
  // Stage 2: backwards whose gradients were reduced by the end of that backward (one per micro-step), the number
  // of gradient buckets, and how many of the last backward's buckets were sent while backward was still running.
  int64_t reductions_during_backward() const { return buffers_.reductions_during_backward(); }
  size_t num_buckets() const { return buffers_.num_buckets(); }
  size_t last_launched_early() const { return buffers_.last_launched_early(); }

  const ShardLayout& layout() const { return layout_; }
  // Bytes of optimizer state held by this rank: fp32 master shard + m + v.
  int64_t state_bytes() const;
  int64_t moment_bytes() const;  // m + v only (comparable with torch::optim::AdamW's state)
  // Bytes that hold gradients across micro-steps on this rank (stage 1: full fp32 buffer; stage 2: the
  // fp32 shard accumulator; the stage-2 per-backward buffer is in the parameters' dtype and reused).
  int64_t accumulated_grad_bytes() const { return buffers_.accumulated_grad_bytes(); }
  // Rank-local tensors, for checkpointing: master shard, exp_avg, exp_avg_sq.
  at::Tensor master_shard() const { return master_; }
  at::Tensor exp_avg() const { return exp_avg_; }
  at::Tensor exp_avg_sq() const { return exp_avg_sq_; }
  // Restores this rank's shard state saved at the same world size (checkpoint resume). The model's
  // parameters must be restored separately (they equal the gathered master shards).
  void restore_shard(const at::Tensor& master, const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq,
                     int64_t step_count);

 private:
  Comm& comm_;
  AdamWConfig config_;
  ShardLayout layout_;
  ZeroFlatBuffers buffers_;
  at::Tensor master_, exp_avg_, exp_avg_sq_;  // shard, fp32
  int64_t step_ = 0;
};

}  // namespace dualign::dist
