// Configuration of UNet2DConditionModel with diffusers' keys and defaults (config.json of a diffusers UNet).
// Only the features dualign implements are accepted; any other non-default value is an error naming the key.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <yaml-cpp/node/node.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dualign::models {

struct UNetConfig {
  int64_t sample_size = 64;
  int64_t in_channels = 4, out_channels = 4;
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  std::vector<std::string> down_block_types{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                            "DownBlock2D"};
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";  // | UNetMidBlock2D | "" (none)
  std::vector<std::string> up_block_types{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                          "CrossAttnUpBlock2D"};
  std::vector<int64_t> block_out_channels{320, 640, 1280, 1280};
  int64_t layers_per_block = 2;
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  std::vector<int64_t> cross_attention_dim{1280};           // one value or one per down block
  std::vector<int64_t> transformer_layers_per_block{1};     // one value or one per down block
  std::vector<int64_t> num_attention_heads{8};              // diffusers: num_attention_heads or attention_head_dim
  std::string class_embed_type;                             // "" | timestep
  std::optional<int64_t> num_class_embeds;
  bool use_linear_projection = false;
  // SDXL's added conditioning ("text_time"): sinusoidal embeddings (addition_time_embed_dim wide) of each of the
  // K time ids, concatenated after the pooled text embedding [B, D], through add_embedding (a TimestepEmbedding
  // from projection_class_embeddings_input_dim = D + K * addition_time_embed_dim) and added to the time embedding.
  std::string addition_embed_type;  // "" | text_time
  int64_t addition_time_embed_dim = 0;
  std::optional<int64_t> projection_class_embeddings_input_dim;

  // Per-down-block values (lists of length 1 are broadcast), as diffusers expands them.
  int64_t heads(size_t block) const;
  int64_t cross_dim(size_t block) const;
  int64_t transformer_layers(size_t block) const;
  int64_t time_embed_dim() const { return block_out_channels.at(0) * 4; }
  bool class_conditional() const { return num_class_embeds.has_value() || !class_embed_type.empty(); }
  bool text_time_conditional() const { return addition_embed_type == "text_time"; }

  static UNetConfig from_json(const nlohmann::json& j, const std::string& origin = "<json>");
  // A YAML mapping with diffusers keys; `ignore` lists extra keys that belong to the caller (e.g. `kind`).
  static UNetConfig from_yaml(const YAML::Node& node, const std::string& origin,
                              const std::vector<std::string>& ignore = {});
  // .json (diffusers config.json) or .yaml/.yml with the same keys.
  static UNetConfig from_file(const std::string& path);
  nlohmann::json to_json() const;  // diffusers-compatible config.json
  // Stable Diffusion XL 1.0 base's UNet (stabilityai/stable-diffusion-xl-base-1.0 unet/config.json); the same as
  // configs/model/unet_sdxl.yaml, for code that has no config directory (`dualign plan`).
  static UNetConfig sdxl_base();
  void validate(const std::string& origin = "<config>") const;
};

}  // namespace dualign::models
