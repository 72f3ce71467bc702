// The flat-vector machinery the ZeRO optimizers share (ZeroAdamW, ZeroAdafactor): every parameter has a place in
// one padded flat vector of world_size slots of `shard` elements, and rank r updates slot r. Where the parameters
// sit in it is the optimizer's choice (ZeroAdamW: concatenated and cut at element offsets; ZeroAdafactor: whole
// parameters per slot).
//  stage 1: gradients accumulate over micro-steps in a full flat fp32 buffer (.grad alias it); reduce_gradients()
//           reduce-scatters (average) it once.
//  stage 2: each backward lands in a flat buffer in the parameters' dtype (bf16 models: half the bytes of fp32),
//           cut into buckets: contiguous ranges of the flat vector (whole parameters, up to bucket_cap_bytes,
//           from its end, where the last-registered parameters that backward reaches first sit). As DDP does with
//           its all-reduces, a bucket's reduce-scatter starts from the gradient hook of its last parameter, in a
//           fixed bucket order on every rank, so it overlaps the rest of backward; a bucket straddling several
//           ranks' slots is an uneven reduce-scatter (Comm::reduce_scatter_v_async). At the end of each backward
//           (an autograd callback) the buckets not yet sent go out, every part is added into the per-rank fp32
//           slot accumulator and the buffer is zeroed for the next micro-step.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "dist/comm.h"

namespace dualign::dist {

struct ZeroOptions {
  int stage = 1;  // 1 or 2
  bool broadcast_at_start = true;
  at::ScalarType reduce_dtype = at::kFloat;  // dist.reduce_dtype: the reduce-scatter's dtype (bf16: a bf16 copy)
  int64_t bucket_cap_bytes = 25 << 20;       // stage 2 (dist.bucket_mb), in the flat buffer's dtype
  bool overlap = true;  // stage 2; false: every bucket is sent at the end of backward (benchmarks compare the two)
};

// Stage-2 buckets (pure, unit-tested): parameters taken from the highest offset down, packed greedily up to
// cap_bytes (element_bytes per element); each bucket lists its parameters.
std::vector<std::vector<size_t>> assign_flat_buckets(const std::vector<int64_t>& numels,
                                                     const std::vector<int64_t>& offsets, int64_t element_bytes,
                                                     int64_t cap_bytes);
// Rank r's share of the flat range [begin, end) when rank r owns [r·shard, (r+1)·shard).
std::vector<int64_t> slot_counts(int64_t begin, int64_t end, int64_t shard, int world_size);

class ZeroFlatBuffers {
 public:
  // offsets[i]: where params[i] starts in the flat vector of shard x world_size elements (the rest is padding, zero).
  // Broadcasts rank 0's parameters first (options.broadcast_at_start).
  ZeroFlatBuffers(Comm& comm, std::vector<at::Tensor> params, std::vector<int64_t> offsets, int64_t shard,
                  ZeroOptions options);
  ~ZeroFlatBuffers();
  ZeroFlatBuffers(const ZeroFlatBuffers&) = delete;
  ZeroFlatBuffers& operator=(const ZeroFlatBuffers&) = delete;

  const std::vector<at::Tensor>& params() const { return params_; }
  // This rank's slot of the parameters, a new fp32 tensor (the optimizer's master copy).
  at::Tensor master_slot() const;
  void zero_grad();  // start a new accumulation window
  // After the last micro-step's backward (collective): this rank's slot of the averaged gradient, multiplied by
  // `unscale` and, with max_grad_norm > 0, clipped to that global L2 norm (as torch::nn::utils::clip_grad_norm_).
  // Returns the global norm before clipping; when it is not finite nothing is clipped and no rank may update.
  double reduce_gradients(double max_grad_norm, double unscale);
  const at::Tensor& grad_slot() const { return shard_grad_; }
  // All-gathers every rank's updated master slot back into every rank's parameters.
  void gather_parameters(const at::Tensor& master);

  int stage() const { return options_.stage; }
  // Stage 2: backwards whose gradients were reduced by the end of that backward (one per micro-step).
  int64_t reductions_during_backward() const { return reductions_during_backward_; }
  size_t num_buckets() const { return buckets_.size(); }
  // Of the last backward's buckets, those sent while other gradients were still to come (overlapping backward).
  size_t last_launched_early() const { return last_launched_early_; }
  // Bytes that hold gradients across micro-steps on this rank (stage 1: full fp32 buffer; stage 2: the fp32 slot
  // accumulator; the stage-2 per-backward buffer is in the parameters' dtype and reused).
  int64_t accumulated_grad_bytes() const;

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;   // range of the flat vector
    std::vector<size_t> params;
    std::vector<int64_t> counts;  // per rank: elements of the range in its slot
    int64_t slot_offset = 0;      // where this rank's part starts in its slot
    size_t pending = 0;           // gradients still to arrive this backward
    at::Tensor part;              // this rank's reduced part (in flight)
    std::unique_ptr<Work> work;
  };
  void build_buckets();
  void on_grad_ready(size_t param_index);
  void launch_ready_buckets();  // in bucket order, never skipping one that is not ready
  void launch(Bucket& bucket);
  void finish_backward();  // autograd callback: send the rest, add every part into the slot, zero the buffer

  Comm& comm_;
  std::vector<at::Tensor> params_;
  std::vector<int64_t> offsets_;
  int64_t shard_ = 0;
  ZeroOptions options_;
  std::vector<at::Tensor> grad_views_;
  at::Tensor flat_grad_;    // padded; stage 1: fp32, stage 2: parameters' dtype
  at::Tensor shard_grad_;   // this rank's slot, fp32: averaged gradient (stage 2: the accumulator)
  at::Tensor flat_params_;  // padded, parameters' dtype: all-gather target
  // stage 2 bookkeeping for the backward in progress
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // per parameter
  std::vector<char> ready_;
  size_t ready_count_ = 0, next_launch_ = 0, launched_early_ = 0, last_launched_early_ = 0;
  int64_t reductions_during_backward_ = 0;
  std::mutex mutex_;  // hooks may run on autograd worker threads
};

}  // namespace dualign::dist
