// Flat gradient storage shared by GradSync (one fp32 buffer per bucket) and ZeRO (one padded buffer).
// When the buffer has the parameter's dtype, the parameter's .grad aliases its slice, so backward
// accumulates straight into it (no copy). Otherwise (fp32 buffer, bf16 parameter) a post-accumulate-grad
// hook folds each gradient into the slice, which makes accumulation over micro-steps fp32. The same hook
// re-folds a .grad that an optimizer reset to None, then tells the owner the parameter's gradient is ready.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace dualign::dist {

// A slice of `flat` shaped like `sizes` that shares its memory but is not an autograd view, so optimizers
// may detach_() or reset it (torch::optim::Optimizer::zero_grad does) without an error.
at::Tensor alias_slice(const at::Tensor& flat, int64_t offset, at::IntArrayRef sizes);

// Makes `param.grad` alias `view` (same dtype) and installs the hook; `on_ready()` runs after each
// accumulation into the parameter during backward. Remove with remove_grad_hook.
void attach_grad_view(const at::Tensor& param, const at::Tensor& view, std::function<void()> on_ready);
void remove_grad_hook(const at::Tensor& param);
// After zeroing the flat buffer: make .grad alias the view again (same dtype) or clear it (folded params).
void reset_grad_to_view(const at::Tensor& param, const at::Tensor& view);
// Once the flat buffer holds the final gradient: aliased params already see it; others get a cast copy.
void publish_grad(const at::Tensor& param, const at::Tensor& view);

// Copies every tensor from `root` to all ranks (one flat message per dtype).
class Comm;
void broadcast_tensors(Comm& comm, const std::vector<at::Tensor>& tensors, int root = 0);

}  // namespace dualign::dist
