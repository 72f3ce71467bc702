#include "models/autocast.h"

#include <ATen/autocast_mode.h>

#include "util/error.h"

namespace dualign::models {

AutocastScope::AutocastScope(c10::Device device, c10::ScalarType dtype) : device_type_(device.type()) {
  if (dtype == c10::ScalarType::Float) return;
  DUALIGN_CHECK(dtype == c10::ScalarType::BFloat16 || dtype == c10::ScalarType::Half,
                "autocast: dtype {} (expected bfloat16, float16, or float32 for none)", c10::toString(dtype));
  DUALIGN_CHECK(device_type_ == c10::DeviceType::CPU || device_type_ == c10::DeviceType::CUDA,
                "autocast: device {} (supported: cpu, cuda)", device.str());
  // The same steps as torch.autocast.__enter__.
  prev_enabled_ = at::autocast::is_autocast_enabled(device_type_);
  prev_dtype_ = at::autocast::get_autocast_dtype(device_type_);
  prev_cache_enabled_ = at::autocast::is_autocast_cache_enabled();
  at::autocast::set_autocast_enabled(device_type_, true);
  at::autocast::set_autocast_dtype(device_type_, dtype);
  at::autocast::set_autocast_cache_enabled(true);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // torch.autocast.__exit__: the outermost scope drops the cached weight casts.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_type_, prev_enabled_);
  at::autocast::set_autocast_dtype(device_type_, prev_dtype_);
  at::autocast::set_autocast_cache_enabled(prev_cache_enabled_);
}

c10::ScalarType autocast_dtype(const std::string& precision, const std::string& key) {
  if (precision == "fp32") return c10::ScalarType::Float;
  if (precision == "bf16") return c10::ScalarType::BFloat16;
  if (precision == "fp16") return c10::ScalarType::Half;
  fail("config key '{}': expected fp32, bf16 or fp16, got '{}'", key, precision);
}

}  // namespace dualign::models
