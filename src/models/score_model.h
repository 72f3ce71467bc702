// The denoiser as methods, samplers, rewards and evaluation see it: ε/v prediction from (x_t, t, condition), plus
// its parameters. Built from the `model` config group or rebuilt from a dualign checkpoint; one implementation
// per architecture (MLP for toys, UNet for images and latents).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"

namespace dualign::config {
class Section;
}

namespace dualign::models {

struct UNetConfig;

class ScoreModel {
 public:
  virtual ~ScoreModel() = default;
  // x_t [B, ...], t [B] int64 timesteps → model output shaped like x_t.
  virtual torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const data::Condition& cond) = 0;
  virtual torch::nn::Module& module() = 0;
  virtual std::string describe() const = 0;
  // Shape of one sample (e.g. {2} or {1, 28, 28}), for samplers.
  virtual std::vector<int64_t> sample_shape() const = 0;
  // Class labels 0 .. num_classes()-1 are classes; label num_classes() is the null class that classifier-free
  // guidance uses as its unconditional branch (the UNet's num_class_embeds − 1, the MLP's num_classes). 0 for
  // models without class labels.
  virtual int64_t num_classes() const = 0;
  // Whether the model reads text embeddings (cross-attention).
  virtual bool text_conditional() const = 0;
  // LoRA models: the frozen base with every adapter bypassed, sharing this model's weights (the reference of
  // preference and constrained methods, "LoRA disabled"). Null for models without adapters.
  virtual std::shared_ptr<ScoreModel> base_view() { return nullptr; }
  // Moves the whole network; module() of a LoRA model holds only the adapters.
  virtual void to(const torch::Device& device) { module().to(device); }

  // The trainable state: what the optimizer updates, the EMA averages and checkpoints hold (LoRA: the adapters).
  std::vector<torch::Tensor> parameters() { return module().parameters(); }
  int64_t num_parameters();
  // Freezes the model for use as a reference: eval mode, no gradients, stored in `dtype` (e.g. bf16 on GPU).
  void freeze(torch::ScalarType dtype = torch::kFloat32);
};

// Reads and validates the `model` section (strict: unknown keys are errors) and builds the network on `device`.
// `model.init_from` (optional: a checkpoint file or run dir) loads its weights (EMA weights when the checkpoint
// has them, unless `model.init_weights: model`). `model.lora: {rank, alpha, targets}` (UNet only) then freezes
// those weights and adds LoRA adapters (lora.h): module() and parameters() become the adapters.
std::shared_ptr<ScoreModel> build_score_model(const config::Section& model, const torch::Device& device);

// The UNet architecture a `model` section of kind unet describes: its pretrained directory's config.json, or the
// section's own diffusers keys. Reads nothing else (for counting and planning without building).
UNetConfig unet_config(const config::Section& model);

// Rebuilds the model a training run saved: the `model` section of the checkpoint's config plus its weights
// (group "ema" when present and prefer_ema, else "model"). `checkpoint` is a file or a run/ckpt directory.
std::shared_ptr<ScoreModel> load_score_model(const std::string& checkpoint, const torch::Device& device,
                                             bool prefer_ema = true);

// A diffusers UNet directory (config.json + diffusion_pytorch_model.safetensors, or a pipeline root with unet/).
std::shared_ptr<ScoreModel> load_diffusers_score_model(const std::string& dir, const torch::Device& device);
// The adapters of a LoRA training run (model.lora) as diffusers' <out_dir>/pytorch_lora_weights.safetensors, which
// `pipe.load_lora_weights(out_dir)` loads onto the base UNet (EMA weights when the checkpoint has them and
// prefer_ema). Reads the checkpoint alone: the base weights are not needed.
void export_lora(const std::string& checkpoint, const std::string& out_dir, bool prefer_ema = true);

// A checkpoint file, a ckpt directory (its `latest`) or a run directory (<run>/ckpt/latest) → the file.
std::string resolve_checkpoint(const std::string& path);

// Copies weights from a checkpoint file/dir into `model` (group "ema" if present and prefer_ema, else "model").
// Errors name the checkpoint and every missing or mis-shaped tensor.
void load_weights(ScoreModel& model, const std::string& checkpoint, bool prefer_ema = true);

}  // namespace dualign::models
