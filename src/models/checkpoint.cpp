#include "models/checkpoint.h"

#include <ATen/autocast_mode.h>

#include <algorithm>

#include "models/lora.h"
#include "util/error.h"

namespace dualign::models {
namespace {

struct FnHolder : torch::CustomClassHolder {
  BlockFn fn;
  std::vector<torch::Tensor> params;  // the same leaf tensors the block reads
  FnHolder(BlockFn f, std::vector<torch::Tensor> p) : fn(std::move(f)), params(std::move(p)) {}
};

// Autocast state of the forward pass, re-applied while recomputing.
struct AutocastState {
  bool cuda = false, cpu = false;
  at::ScalarType cuda_dtype = at::kHalf, cpu_dtype = at::kBFloat16;
  static AutocastState capture() {
    AutocastState s;
    s.cuda = at::autocast::is_autocast_enabled(at::kCUDA);
    s.cpu = at::autocast::is_autocast_enabled(at::kCPU);
    s.cuda_dtype = at::autocast::get_autocast_dtype(at::kCUDA);
    s.cpu_dtype = at::autocast::get_autocast_dtype(at::kCPU);
    return s;
  }
  void apply() const {
    at::autocast::set_autocast_enabled(at::kCUDA, cuda);
    at::autocast::set_autocast_enabled(at::kCPU, cpu);
    at::autocast::set_autocast_dtype(at::kCUDA, cuda_dtype);
    at::autocast::set_autocast_dtype(at::kCPU, cpu_dtype);
  }
};

// Re-insert undefined tensors where the mask says the block input was undefined.
std::vector<torch::Tensor> expand(const std::vector<int64_t>& mask, const std::vector<torch::Tensor>& defined) {
  std::vector<torch::Tensor> out;
  size_t k = 0;
  for (auto m : mask) out.push_back(m ? defined.at(k++) : torch::Tensor());
  return out;
}

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  // all = the block inputs followed by the params. (A TensorList, not a std::vector: only TensorList arguments
  // are recorded as differentiable inputs by torch::autograd::Function.) Undefined inputs are not in `all`;
  // `defined_mask` has one entry per block input.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, c10::IValue fn_capsule,
                                                std::vector<int64_t> defined_mask, at::TensorList all) {
    const int64_t n_inputs = int64_t(std::count(defined_mask.begin(), defined_mask.end(), 1));
    auto holder = c10::static_intrusive_pointer_cast<FnHolder>(fn_capsule.toCapsule());
    ctx->saved_data["fn"] = fn_capsule;
    ctx->saved_data["n_inputs"] = n_inputs;
    ctx->saved_data["mask"] = defined_mask;
    auto ac = AutocastState::capture();
    ctx->saved_data["ac_cuda"] = ac.cuda;
    ctx->saved_data["ac_cpu"] = ac.cpu;
    ctx->saved_data["ac_cuda_dtype"] = int64_t(ac.cuda_dtype);
    ctx->saved_data["ac_cpu_dtype"] = int64_t(ac.cpu_dtype);
    ctx->saved_data["adapters"] = adapters_active();  // a reference pass (LoRA disabled) recomputes without them
    std::vector<torch::Tensor> to_save;
    for (int64_t i = 0; i < n_inputs; ++i) to_save.push_back(all[i]);
    ctx->save_for_backward(to_save);
    torch::NoGradGuard no_grad;
    return holder->fn(expand(defined_mask, std::vector<torch::Tensor>(all.begin(), all.begin() + n_inputs)));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto holder = c10::static_intrusive_pointer_cast<FnHolder>(ctx->saved_data["fn"].toCapsule());
    const int64_t n_inputs = ctx->saved_data["n_inputs"].toInt();
    auto saved = ctx->get_saved_variables();
    std::vector<torch::Tensor> inputs;
    for (const auto& t : saved) inputs.push_back(t.defined() ? t.detach().requires_grad_(t.requires_grad()) : t);

    AutocastState outer = AutocastState::capture();
    AutocastState fwd;
    fwd.cuda = ctx->saved_data["ac_cuda"].toBool();
    fwd.cpu = ctx->saved_data["ac_cpu"].toBool();
    fwd.cuda_dtype = at::ScalarType(ctx->saved_data["ac_cuda_dtype"].toInt());
    fwd.cpu_dtype = at::ScalarType(ctx->saved_data["ac_cpu_dtype"].toInt());
    std::vector<torch::Tensor> outputs;
    {
      torch::AutoGradMode grad_on(true);
      // As torch.utils.checkpoint: recompute inside an autocast region of its own, so the weight casts it caches
      // are dropped when it ends (a cache left behind would feed pre-update weights to the next forward). The
      // adapters' state at forward time is restored too, so a checkpointed reference pass stays LoRA-free.
      const bool outer_adapters = adapters_active();
      fwd.apply();
      set_adapters_active(ctx->saved_data["adapters"].toBool());
      at::autocast::increment_nesting();
      outputs = holder->fn(expand(ctx->saved_data["mask"].toIntVector(), inputs));
      if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
      set_adapters_active(outer_adapters);
      outer.apply();
    }
    const auto& params = holder->params;
    std::vector<torch::Tensor> wrt;
    std::vector<int64_t> slot;  // index into the Function's input list
    for (int64_t i = 0; i < n_inputs; ++i)
      if (inputs[i].defined() && inputs[i].requires_grad()) { wrt.push_back(inputs[i]); slot.push_back(i); }
    for (size_t k = 0; k < params.size(); ++k) {
      torch::Tensor p = params[k];
      if (p.requires_grad()) { wrt.push_back(p); slot.push_back(n_inputs + int64_t(k)); }
    }
    std::vector<torch::Tensor> outs, grads;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].defined() && outputs[i].requires_grad() && grad_outputs[i].defined()) {
        outs.push_back(outputs[i]);
        grads.push_back(grad_outputs[i]);
      }
    }
    // fn_capsule and the mask get no gradient; then one slot per defined input and per parameter.
    torch::autograd::variable_list result(2 + n_inputs + params.size());
    if (outs.empty() || wrt.empty()) return result;
    auto g = torch::autograd::grad(outs, wrt, grads, /*retain_graph=*/false, /*create_graph=*/false,
                                   /*allow_unused=*/true);
    for (size_t k = 0; k < wrt.size(); ++k) result[2 + slot[k]] = g[k];
    return result;
  }
};

}  // namespace

std::vector<torch::Tensor> checkpoint(const BlockFn& fn, const std::vector<torch::Tensor>& inputs,
                                      const std::vector<torch::Tensor>& params) {
  if (!torch::GradMode::is_enabled()) return fn(inputs);
  auto capsule = c10::IValue::make_capsule(c10::make_intrusive<FnHolder>(fn, params));
  std::vector<int64_t> mask;
  torch::autograd::variable_list all;
  for (const auto& t : inputs) {
    mask.push_back(t.defined() ? 1 : 0);
    if (t.defined()) all.push_back(t);
  }
  all.insert(all.end(), params.begin(), params.end());
  return CheckpointFunction::apply(capsule, mask, at::TensorList(all));
}

}  // namespace dualign::models
