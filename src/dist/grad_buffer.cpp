#include "dist/grad_buffer.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <map>

#include "dist/comm.h"
#include "util/error.h"

namespace dualign::dist {
namespace {

bool same_dtype(const at::Tensor& param, const at::Tensor& view) { return param.scalar_type() == view.scalar_type(); }

bool aliases(const at::Tensor& a, const at::Tensor& b) {
  return a.defined() && b.defined() && a.data_ptr() == b.data_ptr() && a.sizes() == b.sizes();
}

struct FoldAndNotify : torch::autograd::PostAccumulateGradHook {
  at::Tensor view;
  std::function<void()> on_ready;
  FoldAndNotify(at::Tensor v, std::function<void()> f) : view(std::move(v)), on_ready(std::move(f)) {}
  void operator()(const torch::autograd::Variable& param) override {
    auto& grad = const_cast<at::Tensor&>(param).mutable_grad();
    if (grad.defined() && !aliases(grad, view)) {
      view.add_(grad.detach().reshape(view.sizes()).to(view.scalar_type()));  // accumulate in the view's dtype
      if (same_dtype(param, view))
        grad = view;
      else
        grad.reset();
    }
    on_ready();
  }
};

}  // namespace

at::Tensor alias_slice(const at::Tensor& flat, int64_t offset, at::IntArrayRef sizes) {
  auto alias = at::empty({0}, flat.options());
  alias.set_(flat.storage(), flat.storage_offset() + offset, sizes);
  return alias;
}

void attach_grad_view(const at::Tensor& param, const at::Tensor& view, std::function<void()> on_ready) {
  DUALIGN_CHECK(param.requires_grad() && param.is_leaf(),
                "gradient sync: every parameter must be a leaf that requires grad (shape {})",
                c10::str(param.sizes()));
  DUALIGN_CHECK((view.scalar_type() == at::kFloat || same_dtype(param, view)) && view.numel() == param.numel(),
                "gradient view must be float32 or the parameter's dtype, with {} elements", param.numel());
  reset_grad_to_view(param, view);
  torch::autograd::impl::set_post_acc_grad_hooks(param,
                                                 std::make_unique<FoldAndNotify>(view, std::move(on_ready)));
}

void remove_grad_hook(const at::Tensor& param) { torch::autograd::impl::set_post_acc_grad_hooks(param, nullptr); }

void reset_grad_to_view(const at::Tensor& param, const at::Tensor& view) {
  auto& grad = const_cast<at::Tensor&>(param).mutable_grad();
  if (same_dtype(param, view))
    grad = view;
  else
    grad.reset();
}

void publish_grad(const at::Tensor& param, const at::Tensor& view) {
  auto& grad = const_cast<at::Tensor&>(param).mutable_grad();
  if (same_dtype(param, view)) {
    if (!aliases(grad, view)) grad = view;
  } else {
    grad = view.to(param.scalar_type());
  }
}

void broadcast_tensors(Comm& comm, const std::vector<at::Tensor>& tensors, int root) {
  torch::NoGradGuard no_grad;
  std::map<at::ScalarType, std::vector<at::Tensor>> by_dtype;
  for (const auto& t : tensors) by_dtype[t.scalar_type()].push_back(t);
  for (auto& [dtype, group] : by_dtype) {
    std::vector<at::Tensor> flat_parts;
    for (const auto& t : group) flat_parts.push_back(t.detach().reshape({-1}));
    auto flat = torch::cat(flat_parts).to(comm.device()).contiguous();
    comm.broadcast(flat, root);
    int64_t offset = 0;
    for (const auto& t : group) {
      t.detach().copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

}  // namespace dualign::dist
