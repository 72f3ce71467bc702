#include "models/autocast.h"

#include <ATen/autocast_mode.h>

#include "dualign/build_info.h"

namespace dualign::models {

AutocastScope::AutocastScope(c10::Device device, bool enabled) {
#if DUALIGN_WITH_CUDA
  if (enabled && device.is_cuda()) {
    prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    prev_dtype_ = int(at::autocast::get_autocast_dtype(at::kCUDA));
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::increment_nesting();
    active_ = true;
  }
#else
  (void)device;
  (void)enabled;
#endif
}

AutocastScope::~AutocastScope() {
#if DUALIGN_WITH_CUDA
  if (active_) {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, at::ScalarType(prev_dtype_));
  }
#endif
}

}  // namespace dualign::models
