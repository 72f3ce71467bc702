// Helpers that turn training state into TensorMaps / attributes for a checkpoint and back: module parameters
// and buffers, Adam/AdamW moments, RNG generator states, and the data cursor.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "ckpt/checkpoint.h"
#include "data/loader.h"

namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace dualign::ckpt {

// Parameters and buffers by their dotted names (shallow handles: load_into writes into the module).
TensorMap module_state(const torch::nn::Module& module);

// Adam/AdamW state of every parameter of `module` that has one: "<param>.exp_avg", "<param>.exp_avg_sq",
// "<param>.max_exp_avg_sq" (amsgrad only) and "<param>.step" (int64 scalar).
TensorMap adam_state(const torch::optim::Optimizer& optimizer, const torch::nn::Module& module);
// Restores it (creating the per-parameter state). Errors name the parameter when something is missing.
void load_adam_state(torch::optim::Optimizer& optimizer, const torch::nn::Module& module, const TensorMap& state,
                     const std::string& source);

// RNG: generator states as uint8 tensors (at::Generator::get_state / set_state), by stream name.
TensorMap rng_states(const std::map<std::string, at::Generator>& generators);
void restore_rng_states(std::map<std::string, at::Generator>& generators, const TensorMap& states,
                        const std::string& source);

// The data cursor as root attributes data_epoch / data_position (plus the global batch it was made with).
void put_cursor(CheckpointWriter& writer, const data::Cursor& cursor, int64_t global_batch);
data::Cursor get_cursor(const CheckpointReader& reader);

}  // namespace dualign::ckpt
