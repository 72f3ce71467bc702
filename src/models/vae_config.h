// Configuration of diffusers' AutoencoderKL (the config.json of an SD `vae/` folder), with diffusers' keys and
// defaults. Only the features dualign implements are accepted; other values are errors naming the key.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dualign::models {

struct VaeConfig {
  int64_t in_channels = 3, out_channels = 3;
  std::vector<int64_t> block_out_channels{64};  // one DownEncoderBlock2D / UpDecoderBlock2D per entry
  int64_t layers_per_block = 1;
  int64_t latent_channels = 4;
  int64_t norm_num_groups = 32;
  int64_t sample_size = 32;            // image side the tiles of tiled decoding have (diffusers' tile size)
  double scaling_factor = 0.18215;     // diffusion latents = scaling_factor · (z − shift_factor)
  std::optional<double> shift_factor;  // null for SD-1.x/2.x/XL
  bool use_quant_conv = true, use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  // Latent side of one decoding tile: sample_size / 2^(blocks − 1).
  int64_t tile_latent_size() const;

  // Stable Diffusion 1.x/2.x's VAE (stabilityai/sd-vae-ft-mse); SDXL's has the same shape.
  static VaeConfig stable_diffusion();
  int64_t decoder_parameter_count() const;  // post_quant_conv + decoder, without building them

  static VaeConfig from_json(const nlohmann::json& j, const std::string& origin = "<json>");
  static VaeConfig from_file(const std::string& path);
  nlohmann::json to_json() const;
  void validate(const std::string& origin) const;
};

}  // namespace dualign::models
