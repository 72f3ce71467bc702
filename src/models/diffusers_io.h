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
// Only its architecture (config.json), without the weights.
UNetConfig read_diffusers_unet_config(const std::string& dir);
// Writes config.json and diffusion_pytorch_model.safetensors (dtype: F32 unless given, e.g. F16 for a half-size
// export) into dir, which is created.
void save_diffusers_unet(const UNet2DConditionModelImpl& unet, const std::string& dir,
                         torch::Dtype dtype = torch::kFloat32);

// A diffusers pipeline from `base` (a pipeline root: model_index.json, vae/, text_encoder/, tokenizer/,
// scheduler/, ...) whose unet/ is `out`/unet: every entry of base except unet/ appears in out, as an absolute
// symlink or (copy) a copy. Refuses a base without model_index.json and a base whose unet/config.json describes
// another architecture than out/unet/config.json (the pipeline would not fit together); errors list the keys.
void assemble_pipeline(const std::string& base, const std::string& out, bool copy);

}  // namespace dualign::models
