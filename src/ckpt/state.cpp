#include "ckpt/state.h"

#include <fmt/ranges.h>
#include <torch/torch.h>

#include "util/error.h"

namespace dualign::ckpt {
namespace {

// Adam and AdamW have identical state structs; handle both with one template.
template <typename State>
bool save_moments(const torch::optim::OptimizerParamState* base, const std::string& name, TensorMap& out) {
  auto* s = dynamic_cast<const State*>(base);
  if (!s) return false;
  out[name + ".exp_avg"] = s->exp_avg();
  out[name + ".exp_avg_sq"] = s->exp_avg_sq();
  if (s->max_exp_avg_sq().defined()) out[name + ".max_exp_avg_sq"] = s->max_exp_avg_sq();
  out[name + ".step"] = torch::tensor(s->step(), torch::kLong);
  return true;
}

template <typename State>
std::unique_ptr<torch::optim::OptimizerParamState> load_moments(const at::Tensor& param, const std::string& name,
                                                                const TensorMap& state, const std::string& source) {
  auto get = [&](const std::string& key) -> at::Tensor {
    auto it = state.find(name + key);
    if (it == state.end()) fail("{}: optimizer state has no {}{}", source, name, key);
    return it->second;
  };
  auto s = std::make_unique<State>();
  s->step(get(".step").template item<int64_t>());
  auto like_param = [&](const at::Tensor& t, const std::string& key) {
    if (t.sizes() != param.sizes())
      fail("{}: optimizer state {}{} has shape {}, parameter has {}", source, name, key, t.sizes().vec(), param.sizes().vec());
    return t.to(param.options()).clone();
  };
  s->exp_avg(like_param(get(".exp_avg"), ".exp_avg"));
  s->exp_avg_sq(like_param(get(".exp_avg_sq"), ".exp_avg_sq"));
  if (state.count(name + ".max_exp_avg_sq")) s->max_exp_avg_sq(like_param(get(".max_exp_avg_sq"), ".max_exp_avg_sq"));
  return s;
}

}  // namespace

TensorMap module_state(const torch::nn::Module& module) {
  TensorMap out;
  for (auto& p : module.named_parameters(true)) out[p.key()] = p.value();
  for (auto& b : module.named_buffers(true)) out[b.key()] = b.value();
  return out;
}

TensorMap adam_state(const torch::optim::Optimizer& optimizer, const torch::nn::Module& module) {
  TensorMap out;
  auto& states = optimizer.state();
  for (auto& p : module.named_parameters(true)) {
    auto it = states.find(p.value().unsafeGetTensorImpl());
    if (it == states.end()) continue;  // no step taken yet for this parameter
    if (!save_moments<torch::optim::AdamParamState>(it->second.get(), p.key(), out) &&
        !save_moments<torch::optim::AdamWParamState>(it->second.get(), p.key(), out))
      fail("checkpoint: optimizer state of {} is not Adam/AdamW state", p.key());
  }
  return out;
}

void load_adam_state(torch::optim::Optimizer& optimizer, const torch::nn::Module& module, const TensorMap& state,
                     const std::string& source) {
  bool adamw = dynamic_cast<torch::optim::AdamW*>(&optimizer) != nullptr;
  DUALIGN_CHECK(adamw || dynamic_cast<torch::optim::Adam*>(&optimizer), "{}: load_adam_state needs Adam or AdamW", source);
  auto& states = optimizer.state();
  for (auto& p : module.named_parameters(true)) {
    if (!state.count(p.key() + ".step")) continue;  // parameter had no state when saved
    void* key = p.value().unsafeGetTensorImpl();
    states[key] = adamw ? load_moments<torch::optim::AdamWParamState>(p.value(), p.key(), state, source)
                        : load_moments<torch::optim::AdamParamState>(p.value(), p.key(), state, source);
  }
}

TensorMap rng_states(const std::map<std::string, at::Generator>& generators) {
  TensorMap out;
  for (auto [name, gen] : generators) {  // Generator is a shared handle: the copy is the same generator
    std::lock_guard lock(gen.mutex());
    out[name] = gen.get_state();
  }
  return out;
}

void restore_rng_states(std::map<std::string, at::Generator>& generators, const TensorMap& states,
                        const std::string& source) {
  for (auto& [name, gen] : generators) {
    auto it = states.find(name);
    if (it == states.end()) fail("{}: no RNG state for stream '{}'", source, name);
    std::lock_guard lock(gen.mutex());
    gen.set_state(it->second);
  }
}

void put_cursor(CheckpointWriter& writer, const data::Cursor& cursor, int64_t global_batch) {
  writer.set_attr("data_epoch", cursor.epoch);
  writer.set_attr("data_position", cursor.position);
  writer.set_attr("data_global_batch", global_batch);
}

data::Cursor get_cursor(const CheckpointReader& reader) {
  for (auto* key : {"data_epoch", "data_position"})
    if (!reader.has_attr(key)) fail("{}: checkpoint has no data cursor (attribute {})", reader.path(), key);
  return {reader.attr_int("data_epoch"), reader.attr_int("data_position")};
}

}  // namespace dualign::ckpt
