// Autocast (mixed precision) for a forward region, in C++ what `with torch.autocast(device_type, dtype):` is in
// Python: matmuls, convolutions and attention run in bf16 or fp16 while the weights stay fp32 (autocast casts them
// per op and caches the casts of leaf parameters for the rest of the region); the operator lists are PyTorch's,
// so the same graph runs in the same dtypes as PyTorch's autocast. Leaving the outermost scope clears the cast cache,
// as torch.autocast's exit does, so the next forward sees the updated weights. Backward needs no scope: each
// op's backward runs in the dtype its forward ran in. Activation checkpointing (models/checkpoint.h) re-applies
// the forward's autocast state when it recomputes a block.
//
//   { AutocastScope autocast(device, torch::kBFloat16);  out = model(x); }   // kFloat32: a no-op
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace dualign::models {

class AutocastScope {
 public:
  // dtype kBFloat16 or kHalf enables autocast for device's type (CPU or CUDA); kFloat32 leaves everything as is.
  AutocastScope(c10::Device device, c10::ScalarType dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;
  bool active() const { return active_; }

 private:
  c10::DeviceType device_type_ = c10::DeviceType::CPU;
  bool active_ = false;
  bool prev_enabled_ = false;
  bool prev_cache_enabled_ = true;
  c10::ScalarType prev_dtype_ = c10::ScalarType::BFloat16;
};

// "fp32" | "bf16" | "fp16" → the autocast dtype (kFloat32 = autocast off). `key` names the config key in errors.
c10::ScalarType autocast_dtype(const std::string& precision, const std::string& key);

}  // namespace dualign::models
