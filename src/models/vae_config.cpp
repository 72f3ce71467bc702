#include "models/vae_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"

namespace dualign::models {

int64_t VaeConfig::tile_latent_size() const {
  return sample_size / (int64_t{1} << (block_out_channels.size() - 1));
}

VaeConfig VaeConfig::stable_diffusion() {
  VaeConfig c;
  c.block_out_channels = {128, 256, 512, 512};
  c.layers_per_block = 2;
  c.sample_size = 512;
  return c;
}

int64_t VaeConfig::decoder_parameter_count() const {
  auto conv3 = [](int64_t i, int64_t o) { return 9 * i * o + o; };
  auto resnet = [&](int64_t i, int64_t o) { return 2 * i + conv3(i, o) + 2 * o + conv3(o, o) + (i != o ? i * o + o : 0); };
  const auto& ch = block_out_channels;
  const int64_t top = ch.back(), n = static_cast<int64_t>(ch.size());
  int64_t total = (use_post_quant_conv ? latent_channels * latent_channels + latent_channels : 0) +
                  conv3(latent_channels, top) + 2 * resnet(top, top) +
                  (mid_block_add_attention ? 2 * top + 4 * (top * top + top) : 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t in = ch[static_cast<size_t>(n - std::max<int64_t>(i, 1))], out = ch[static_cast<size_t>(n - 1 - i)];
    for (int64_t l = 0; l <= layers_per_block; ++l) total += resnet(l == 0 ? in : out, out);
    if (i + 1 < n) total += conv3(out, out);
  }
  return total + 2 * ch.front() + conv3(ch.front(), out_channels);
}

VaeConfig VaeConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  DUALIGN_CHECK(j.is_object(), "{}: an AutoencoderKL config must be a mapping", origin);
  // Keys diffusers writes that carry no architecture (or that only pipelines read) are skipped.
  static const std::set<std::string> known{
      "in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels", "layers_per_block",
      "act_fn", "latent_channels", "norm_num_groups", "sample_size", "scaling_factor", "shift_factor",
      "latents_mean", "latents_std", "force_upcast", "use_quant_conv", "use_post_quant_conv",
      "mid_block_add_attention"};
  for (const auto& [key, value] : j.items())
    DUALIGN_CHECK(key.starts_with("_") || known.count(key), "{}: '{}' is not an AutoencoderKL config key dualign knows",
                  origin, key);
  VaeConfig c;
  auto get = [&](const char* key, auto& field) {
    if (!j.contains(key) || j[key].is_null()) return;
    try {
      j[key].get_to(field);
    } catch (const std::exception& e) {
      fail("{}: key '{}' has the wrong type ({})", origin, key, e.what());
    }
  };
  get("in_channels", c.in_channels);
  get("out_channels", c.out_channels);
  get("block_out_channels", c.block_out_channels);
  get("layers_per_block", c.layers_per_block);
  get("latent_channels", c.latent_channels);
  get("norm_num_groups", c.norm_num_groups);
  get("scaling_factor", c.scaling_factor);
  get("use_quant_conv", c.use_quant_conv);
  get("use_post_quant_conv", c.use_post_quant_conv);
  get("mid_block_add_attention", c.mid_block_add_attention);
  if (j.contains("sample_size") && !j["sample_size"].is_null())
    c.sample_size = j["sample_size"].is_array() ? j["sample_size"][0].get<int64_t>() : j["sample_size"].get<int64_t>();
  if (j.contains("shift_factor") && !j["shift_factor"].is_null()) c.shift_factor = j["shift_factor"].get<double>();
  if (j.contains("act_fn") && j["act_fn"] != "silu")
    fail("{}: 'act_fn' = {} is not supported (only \"silu\")", origin, j["act_fn"].dump());
  const size_t n = c.block_out_channels.size();
  for (const char* key : {"down_block_types", "up_block_types"}) {
    if (!j.contains(key)) continue;
    const auto expected = std::string(key) == "down_block_types" ? "DownEncoderBlock2D" : "UpDecoderBlock2D";
    DUALIGN_CHECK(j[key].is_array() && j[key].size() == n, "{}: '{}' needs {} entries (one per block_out_channels)",
                  origin, key, n);
    for (const auto& t : j[key])
      DUALIGN_CHECK(t == expected, "{}: '{}' entry {} is not supported (only {})", origin, key, t.dump(), expected);
  }
  c.validate(origin);
  return c;
}

VaeConfig VaeConfig::from_file(const std::string& path) {
  std::ifstream in(path);
  DUALIGN_CHECK(in.good(), "cannot open AutoencoderKL config '{}'", path);
  try {
    return from_json(nlohmann::json::parse(in), path);
  } catch (const nlohmann::json::exception& e) {
    fail("cannot parse AutoencoderKL config '{}': {}", path, e.what());
  }
}

void VaeConfig::validate(const std::string& origin) const {
  DUALIGN_CHECK(!block_out_channels.empty(), "{}: block_out_channels is empty", origin);
  for (size_t i = 0; i < block_out_channels.size(); ++i)
    DUALIGN_CHECK(block_out_channels[i] % norm_num_groups == 0,
                  "{}: block_out_channels[{}] = {} is not divisible by norm_num_groups {}", origin, i,
                  block_out_channels[i], norm_num_groups);
  DUALIGN_CHECK(layers_per_block >= 1 && latent_channels >= 1, "{}: layers_per_block and latent_channels must be >= 1",
                origin);
  DUALIGN_CHECK(scaling_factor > 0, "{}: scaling_factor must be positive, got {}", origin, scaling_factor);
  DUALIGN_CHECK(tile_latent_size() >= 1, "{}: sample_size {} is smaller than the {}x downsampling", origin, sample_size,
                int64_t{1} << (block_out_channels.size() - 1));
}

nlohmann::json VaeConfig::to_json() const {
  const auto n = block_out_channels.size();
  return {{"_class_name", "AutoencoderKL"},
          {"in_channels", in_channels},
          {"out_channels", out_channels},
          {"down_block_types", std::vector<std::string>(n, "DownEncoderBlock2D")},
          {"up_block_types", std::vector<std::string>(n, "UpDecoderBlock2D")},
          {"block_out_channels", block_out_channels},
          {"layers_per_block", layers_per_block},
          {"act_fn", "silu"},
          {"latent_channels", latent_channels},
          {"norm_num_groups", norm_num_groups},
          {"sample_size", sample_size},
          {"scaling_factor", scaling_factor},
          {"shift_factor", shift_factor ? nlohmann::json(*shift_factor) : nlohmann::json(nullptr)},
          {"use_quant_conv", use_quant_conv},
          {"use_post_quant_conv", use_post_quant_conv},
          {"mid_block_add_attention", mid_block_add_attention}};
}

}  // namespace dualign::models
