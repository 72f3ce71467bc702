// Load and export diffusers UNets: <dir>/config.json + <dir>/diffusion_pytorch_model.safetensors (a pipeline
// root with a unet/ folder is accepted too). State-dict loading checks names and shapes strictly.
#pragma once
#include <torch/torch.h>

#include <string>

#include "models/safetensors.h"
#include "models/unet.h"

namespace dualign::models {

// All parameters and buffers by dotted name.
TensorMap state_dict(const torch::nn::Module& module);
// Copies `tensors` into the module (casting dtype). Any missing, unexpected or mis-shaped tensor is an error
// that lists every offending name (`origin` names the source).
void load_state_dict(torch::nn::Module& module, const TensorMap& tensors, const std::string& origin);

UNet2DConditionModel load_diffusers_unet(const std::string& dir);
// Writes config.json and diffusion_pytorch_model.safetensors (dtype: F32 unless given) into dir.
void save_diffusers_unet(const UNet2DConditionModel& unet, const std::string& dir,
                         torch::Dtype dtype = torch::kFloat32);

}  // namespace dualign::models
