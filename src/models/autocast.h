// bf16 autocast scope for the UNet forward on GPU builds. On a CUDA device (DUALIGN_WITH_CUDA builds) matmuls
// and convolutions run in bf16 with fp32 weights and fp32 reductions; on CPU, or when disabled, it is a no-op
// (our CPU runs and the parity tests are fp32). Activation checkpointing re-applies the autocast state when it
// recomputes, so checkpointed blocks see the same precision in backward.
#pragma once
#include <c10/core/Device.h>

namespace dualign::models {

class AutocastScope {
 public:
  AutocastScope(c10::Device device, bool enabled);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;
  bool active() const { return active_; }

 private:
  bool active_ = false;
  bool prev_enabled_ = false;
  int prev_dtype_ = 0;
};

}  // namespace dualign::models
