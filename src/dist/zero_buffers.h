// The flat-vector machinery the ZeRO optimizers share (ZeroAdamW, ZeroAdafactor): every parameter has a place in
// one padded flat vector of world_size slots of `shard` elements, and rank r updates slot r. Where the parameters
// sit in it is the optimizer's choice (ZeroAdamW: concatenated and cut at element offsets; ZeroAdafactor: whole
// parameters per slot).
//  stage 1: gradients accumulate over micro-steps in a full flat fp32 buffer (.grad alias it); reduce_gradients()
//           reduce-scatters (average) it once.
//  stage 2: each backward lands in a flat buffer in the parameters' dtype (bf16 models: half the bytes of fp32),
//           and when the last parameter's gradient of that backward is ready the buffer is reduce-scattered into a
//           per-rank fp32 slot accumulator and zeroed.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "dist/comm.h"

namespace dualign::dist {

struct ZeroOptions {
  int stage = 1;  // 1 or 2
  bool broadcast_at_start = true;
  at::ScalarType reduce_dtype = at::kFloat;  // dist.reduce_dtype: the reduce-scatter's dtype (bf16: a bf16 copy)
};

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
  // Stage 2: reduce-scatters started from the last gradient hook of a backward (one per micro-step).
  int64_t reductions_during_backward() const { return reductions_during_backward_; }
  // Bytes that hold gradients across micro-steps on this rank (stage 1: full fp32 buffer; stage 2: the fp32 slot
  // accumulator; the stage-2 per-backward buffer is in the parameters' dtype and reused).
  int64_t accumulated_grad_bytes() const;

 private:
  void on_grad_ready(size_t param_index);
  void reduce_scatter_into_accumulator();  // stage 2: flat buffer -> fp32 slot accumulator, zero the buffer

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
  std::vector<char> ready_;
  size_t ready_count_ = 0;
  int64_t reductions_during_backward_ = 0;
};

}  // namespace dualign::dist
