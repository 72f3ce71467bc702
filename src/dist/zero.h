// ZeRO stage 1 (systems.md §A3): optimizer state sharded over ranks. All parameters form one flat fp32
// vector padded to a multiple of the world size; rank r owns [r*shard, (r+1)*shard). Gradients accumulate
// in a flat fp32 buffer (.grad are views); step() reduce-scatters (average) it so each rank holds its
// shard's global gradient, runs AdamW on its fp32 master shard (m, v and master exist only for the shard),
// and all-gathers the updated parameters back into every rank's model.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "dist/comm.h"

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
  ZeroAdamW(Comm& comm, std::vector<at::Tensor> params, AdamWConfig config, bool broadcast_at_start = true);
  ~ZeroAdamW();
  ZeroAdamW(const ZeroAdamW&) = delete;
  ZeroAdamW& operator=(const ZeroAdamW&) = delete;

  // After the last micro-step's backward (collective: every rank calls it). With max_grad_norm > 0 the
  // averaged gradient is clipped to that global L2 norm first (as torch::nn::utils::clip_grad_norm_).
  // Returns the global gradient norm before clipping.
  double step(double max_grad_norm = 0);
  void zero_grad();  // zero the flat gradient buffer
  void set_lr(double lr) { config_.lr = lr; }
  int64_t step_count() const { return step_; }

  const ShardLayout& layout() const { return layout_; }
  // Bytes of optimizer state held by this rank: fp32 master shard + m + v.
  int64_t state_bytes() const;
  int64_t moment_bytes() const;  // m + v only (comparable with torch::optim::AdamW's state)
  // Rank-local tensors, for checkpointing: master shard, exp_avg, exp_avg_sq.
  at::Tensor master_shard() const { return master_; }
  at::Tensor exp_avg() const { return exp_avg_; }
  at::Tensor exp_avg_sq() const { return exp_avg_sq_; }

 private:
  Comm& comm_;
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> grad_views_;
  AdamWConfig config_;
  ShardLayout layout_;
  at::Tensor flat_grad_;    // padded, fp32, every rank
  at::Tensor shard_grad_;   // shard, fp32
  at::Tensor flat_params_;  // padded, fp32 gather target
  at::Tensor master_, exp_avg_, exp_avg_sq_;  // shard, fp32
  int64_t step_ = 0;
};

}  // namespace dualign::dist
