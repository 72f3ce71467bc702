// Flat fp32 gradient storage shared by GradSync (one buffer per bucket) and ZeRO (one padded buffer).
// Each parameter's .grad is a view into the flat buffer, so backward accumulates straight into it (no copy)
// and gradient accumulation over micro-steps happens in fp32. A post-accumulate-grad hook per parameter
// folds in any gradient that did not land in the view (bf16/half parameters, or .grad reset to None by an
// optimizer) and then tells the owner that the parameter's gradient is ready.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace dualign::dist {

// A slice of `flat` shaped like `sizes` that shares its memory but is not an autograd view, so optimizers
// may detach_() or reset it (torch::optim::Optimizer::zero_grad does) without an error.
at::Tensor alias_slice(const at::Tensor& flat, int64_t offset, at::IntArrayRef sizes);

// Makes `param.grad` a view of `view` (fp32 params) and installs the hook; `on_ready()` runs after each
// accumulation into the parameter during backward. Remove with remove_grad_hook.
void attach_grad_view(const at::Tensor& param, const at::Tensor& view, std::function<void()> on_ready);
void remove_grad_hook(const at::Tensor& param);
// After zeroing the flat buffer: make .grad point at the view again (fp32) or clear it (other dtypes).
void reset_grad_to_view(const at::Tensor& param, const at::Tensor& view);
// Once the flat buffer holds the final gradient: fp32 params already see it; others get a cast copy.
void publish_grad(const at::Tensor& param, const at::Tensor& view);

// Copies every tensor from `root` to all ranks (one flat message per dtype).
class Comm;
void broadcast_tensors(Comm& comm, const std::vector<at::Tensor>& tensors, int root = 0);

}  // namespace dualign::dist
