// The CLIP image tower with its projection: transformers' CLIPVisionModelWithProjection, with transformers' module
// (and safetensors) names, so a CLIPModel or CLIPVisionModelWithProjection directory loads unchanged (PickScore_v1,
// clip-vit-large-patch14, ...). The text tower stays in Python: rewards read precomputed text embeddings.
//   patch conv (no bias) + class token + positions → pre_layrnorm → L × [x + attn(ln1 x); x + mlp(ln2 x)]
//   → post_layernorm(token 0) → visual_projection (no bias)
// Input: pixel_values [B, 3, image_size, image_size], already normalised (clip_preprocess.h does that
// differentiably). Output: image embeddings [B, projection_dim], not normalised.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "models/safetensors.h"

namespace dualign::models {

struct ClipVisionConfig {
  int64_t hidden_size = 768, intermediate_size = 3072, projection_dim = 512;
  int64_t num_hidden_layers = 12, num_attention_heads = 12, num_channels = 3;
  int64_t image_size = 224, patch_size = 32;
  std::string hidden_act = "quick_gelu";  // quick_gelu (OpenAI CLIP) | gelu (LAION CLIP-H, PickScore)
  double layer_norm_eps = 1e-5;

  // A CLIPConfig (vision_config + projection_dim) or a CLIPVisionConfig.
  static ClipVisionConfig from_json(const nlohmann::json& j, const std::string& origin);
  // The towers of the published reward models: ViT-H/14 (PickScore, HPSv2) and ViT-L/14 (CLIP score, aesthetic).
  static ClipVisionConfig vit_h14();
  static ClipVisionConfig vit_l14();
  int64_t parameter_count() const;  // of ClipVisionModel with this config, without building it
};

class ClipEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderLayerImpl(const ClipVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t heads_;
  bool quick_gelu_;
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  std::shared_ptr<torch::nn::Module> self_attn, mlp;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr}, fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

class ClipVisionModelImpl : public torch::nn::Module {
 public:
  explicit ClipVisionModelImpl(ClipVisionConfig config);
  torch::Tensor forward(const torch::Tensor& pixel_values);  // → image embeddings [B, projection_dim]
  const ClipVisionConfig& config() const { return config_; }
  // Recompute each encoder layer in backward instead of storing its activations.
  void set_gradient_checkpointing(bool on) { checkpoint_ = on; }

 private:
  ClipVisionConfig config_;
  bool checkpoint_ = false;
  torch::Tensor class_embedding;
  torch::nn::Conv2d patch_embedding{nullptr};
  torch::nn::Embedding position_embedding{nullptr};
  torch::nn::LayerNorm pre_layrnorm{nullptr}, post_layernorm{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::Linear visual_projection{nullptr};
};
TORCH_MODULE(ClipVisionModel);

struct LoadedClipVision {
  ClipVisionModel model{nullptr};
  std::optional<double> logit_scale;  // CLIPModel checkpoints: the learned log temperature (PickScore uses exp of it)
  nlohmann::json preprocessor;        // preprocessor_config.json of the directory, or null
};

// A transformers directory: config.json + model.safetensors (or model.safetensors.index.json shards), optional
// preprocessor_config.json. Only the vision tower, visual_projection and logit_scale are read; a missing or
// mis-shaped tensor is an error listing every name.
LoadedClipVision load_clip_vision(const std::string& dir);

// The visual tower of an open_clip ViT (HPSv2's ViT-H-14) from its `visual.*` tensors: the same architecture with
// other names (packed in_proj q/k/v, proj as a [width, dim] matrix), mapped onto ClipVisionModel.
void load_open_clip_visual(ClipVisionModel& model, const TensorMap& open_clip_state, const std::string& origin);

}  // namespace dualign::models
