#include "models/unet_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace dualign::models {
namespace {

nlohmann::json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return nullptr;
    case YAML::NodeType::Sequence: {
      auto arr = nlohmann::json::array();
      for (const auto& child : node) arr.push_back(yaml_to_json(child));
      return arr;
    }
    case YAML::NodeType::Map: {
      auto obj = nlohmann::json::object();
      for (const auto& kv : node) obj[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return obj;
    }
    default: {
      const auto s = node.Scalar();
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      if (s == "null" || s == "~") return nullptr;
      try {
        size_t pos = 0;
        long long i = std::stoll(s, &pos);
        if (pos == s.size()) return i;
        double d = std::stod(s, &pos);
        if (pos == s.size()) return d;
      } catch (...) {
      }
      return s;
    }
  }
}

std::vector<int64_t> int_or_list(const nlohmann::json& v, const std::string& key, const std::string& origin) {
  if (v.is_number_integer()) return {v.get<int64_t>()};
  DUALIGN_CHECK(v.is_array(), "{}: '{}' must be an integer or a list of integers", origin, key);
  std::vector<int64_t> out;
  for (const auto& x : v) out.push_back(x.get<int64_t>());
  return out;
}

int64_t per_block(const std::vector<int64_t>& v, size_t block) { return v.size() == 1 ? v[0] : v.at(block); }

}  // namespace

int64_t UNetConfig::heads(size_t b) const { return per_block(num_attention_heads, b); }
int64_t UNetConfig::cross_dim(size_t b) const { return per_block(cross_attention_dim, b); }
int64_t UNetConfig::transformer_layers(size_t b) const { return per_block(transformer_layers_per_block, b); }

UNetConfig UNetConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  DUALIGN_CHECK(j.is_object(), "{}: a UNet config must be a mapping", origin);
  UNetConfig c;
  auto get = [&](const char* key, auto& field) {
    if (j.contains(key) && !j[key].is_null()) {
      try {
        j[key].get_to(field);
      } catch (const std::exception& e) {
        fail("{}: key '{}' has the wrong type ({})", origin, key, e.what());
      }
    }
  };
  get("sample_size", c.sample_size);
  get("in_channels", c.in_channels);
  get("out_channels", c.out_channels);
  get("center_input_sample", c.center_input_sample);
  get("flip_sin_to_cos", c.flip_sin_to_cos);
  get("freq_shift", c.freq_shift);
  get("down_block_types", c.down_block_types);
  get("up_block_types", c.up_block_types);
  if (j.contains("mid_block_type")) c.mid_block_type = j["mid_block_type"].is_null() ? "" : j["mid_block_type"].get<std::string>();
  get("block_out_channels", c.block_out_channels);
  get("layers_per_block", c.layers_per_block);
  get("downsample_padding", c.downsample_padding);
  get("mid_block_scale_factor", c.mid_block_scale_factor);
  get("norm_num_groups", c.norm_num_groups);
  get("norm_eps", c.norm_eps);
  get("use_linear_projection", c.use_linear_projection);
  if (j.contains("cross_attention_dim") && !j["cross_attention_dim"].is_null())
    c.cross_attention_dim = int_or_list(j["cross_attention_dim"], "cross_attention_dim", origin);
  if (j.contains("transformer_layers_per_block") && !j["transformer_layers_per_block"].is_null())
    c.transformer_layers_per_block = int_or_list(j["transformer_layers_per_block"], "transformer_layers_per_block", origin);
  // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (a historical misnomer)
  if (j.contains("num_attention_heads") && !j["num_attention_heads"].is_null())
    c.num_attention_heads = int_or_list(j["num_attention_heads"], "num_attention_heads", origin);
  else if (j.contains("attention_head_dim") && !j["attention_head_dim"].is_null())
    c.num_attention_heads = int_or_list(j["attention_head_dim"], "attention_head_dim", origin);
  if (j.contains("class_embed_type") && !j["class_embed_type"].is_null()) c.class_embed_type = j["class_embed_type"];
  if (j.contains("num_class_embeds") && !j["num_class_embeds"].is_null()) c.num_class_embeds = j["num_class_embeds"].get<int64_t>();
  get("addition_embed_type", c.addition_embed_type);
  get("addition_time_embed_dim", c.addition_time_embed_dim);
  if (j.contains("projection_class_embeddings_input_dim") && !j["projection_class_embeddings_input_dim"].is_null())
    c.projection_class_embeddings_input_dim = j["projection_class_embeddings_input_dim"].get<int64_t>();

  // Features we do not implement must keep their defaults.
  auto must_be = [&](const char* key, const nlohmann::json& expected) {
    if (j.contains(key) && !j[key].is_null() && j[key] != expected)
      fail("{}: '{}' = {} is not supported by dualign's UNet (only {})", origin, key, j[key].dump(), expected.dump());
  };
  must_be("act_fn", "silu");
  must_be("resnet_time_scale_shift", "default");
  must_be("time_embedding_type", "positional");
  must_be("only_cross_attention", false);
  must_be("dual_cross_attention", false);
  must_be("encoder_hid_dim", nullptr);
  must_be("class_embeddings_concat", false);
  must_be("time_cond_proj_dim", nullptr);
  must_be("conv_in_kernel", 3);
  must_be("conv_out_kernel", 3);
  must_be("resnet_skip_time_act", false);
  must_be("resnet_out_scale_factor", 1.0);
  must_be("mid_block_only_cross_attention", nullptr);
  must_be("cross_attention_norm", nullptr);
  must_be("reverse_transformer_layers_per_block", nullptr);
  must_be("encoder_hid_dim_type", nullptr);
  must_be("time_embedding_act_fn", nullptr);
  must_be("time_embedding_dim", nullptr);
  must_be("timestep_post_act", nullptr);
  must_be("attention_type", "default");
  must_be("dropout", 0.0);
  c.validate(origin);
  return c;
}

UNetConfig UNetConfig::from_yaml(const YAML::Node& node, const std::string& origin,
                                 const std::vector<std::string>& ignore) {
  // Keys this file reads or checks (from_json): a YAML model config written by hand must not carry typos, which
  // from_json (lenient, for diffusers' config.json with its _class_name etc.) would silently ignore.
  static const std::set<std::string> known{
      "act_fn", "addition_embed_type", "addition_embed_type_num_heads", "addition_time_embed_dim",
      "attention_head_dim", "attention_type", "block_out_channels",
      "center_input_sample", "class_embed_type", "class_embeddings_concat", "conv_in_kernel", "conv_out_kernel",
      "cross_attention_dim", "cross_attention_norm", "down_block_types", "downsample_padding", "dropout",
      "dual_cross_attention", "encoder_hid_dim", "encoder_hid_dim_type", "flip_sin_to_cos", "freq_shift",
      "in_channels", "layers_per_block", "mid_block_only_cross_attention", "mid_block_scale_factor",
      "mid_block_type", "norm_eps", "norm_num_groups", "num_attention_heads", "num_class_embeds",
      "only_cross_attention", "out_channels", "projection_class_embeddings_input_dim", "resnet_out_scale_factor",
      "resnet_skip_time_act", "resnet_time_scale_shift", "reverse_transformer_layers_per_block", "sample_size",
      "time_cond_proj_dim", "time_embedding_act_fn", "time_embedding_dim", "time_embedding_type",
      "timestep_post_act", "transformer_layers_per_block", "up_block_types", "use_linear_projection"};
  auto j = yaml_to_json(node);
  for (const auto& key : ignore) j.erase(key);
  for (const auto& [key, value] : j.items())
    DUALIGN_CHECK(known.count(key), "{}: '{}' is not a UNet2DConditionModel config key dualign knows", origin, key);
  return from_json(j, origin);
}

UNetConfig UNetConfig::from_file(const std::string& path) {
  std::ifstream in(path);
  DUALIGN_CHECK(in.good(), "cannot open UNet config '{}'", path);
  const bool yaml = path.ends_with(".yaml") || path.ends_with(".yml");
  nlohmann::json j;
  try {
    if (yaml) {
      j = yaml_to_json(YAML::LoadFile(path));
    } else {
      j = nlohmann::json::parse(in);
    }
  } catch (const std::exception& e) {
    fail("cannot parse UNet config '{}': {}", path, e.what());
  }
  if (yaml && j.contains("unet")) j = j["unet"];  // allow a `unet:` section in a model YAML
  return from_json(j, path);
}

void UNetConfig::validate(const std::string& origin) const {
  const size_t n = block_out_channels.size();
  DUALIGN_CHECK(n >= 1 && down_block_types.size() == n && up_block_types.size() == n,
                "{}: block_out_channels, down_block_types and up_block_types must have the same length ({}, {}, {})",
                origin, n, down_block_types.size(), up_block_types.size());
  for (auto* list : {&cross_attention_dim, &transformer_layers_per_block, &num_attention_heads})
    DUALIGN_CHECK(list->size() == 1 || list->size() == n,
                  "{}: per-block lists (cross_attention_dim, transformer_layers_per_block, attention heads) need 1 or {} entries",
                  origin, n);
  for (size_t i = 0; i < n; ++i) {
    DUALIGN_CHECK(block_out_channels[i] % norm_num_groups == 0, "{}: block_out_channels[{}] = {} not divisible by norm_num_groups {}",
                  origin, i, block_out_channels[i], norm_num_groups);
    DUALIGN_CHECK(block_out_channels[i] % heads(i) == 0, "{}: block_out_channels[{}] = {} not divisible by {} heads", origin,
                  i, block_out_channels[i], heads(i));
    const auto& d = down_block_types[i];
    const auto& u = up_block_types[i];
    DUALIGN_CHECK(d == "CrossAttnDownBlock2D" || d == "DownBlock2D", "{}: down_block_types[{}] = '{}' not supported", origin, i, d);
    DUALIGN_CHECK(u == "CrossAttnUpBlock2D" || u == "UpBlock2D", "{}: up_block_types[{}] = '{}' not supported", origin, i, u);
  }
  DUALIGN_CHECK(mid_block_type == "UNetMidBlock2DCrossAttn" || mid_block_type == "UNetMidBlock2D" || mid_block_type.empty(),
                "{}: mid_block_type '{}' not supported", origin, mid_block_type);
  DUALIGN_CHECK(class_embed_type.empty() || class_embed_type == "timestep",
                "{}: class_embed_type '{}' not supported (null or timestep)", origin, class_embed_type);
  DUALIGN_CHECK(addition_embed_type.empty() || text_time_conditional(),
                "{}: addition_embed_type '{}' not supported (null or text_time)", origin, addition_embed_type);
  if (text_time_conditional()) {
    DUALIGN_CHECK(addition_time_embed_dim > 0 && projection_class_embeddings_input_dim.value_or(0) > 0,
                  "{}: addition_embed_type text_time needs addition_time_embed_dim and "
                  "projection_class_embeddings_input_dim > 0 (got {} and {})", origin, addition_time_embed_dim,
                  projection_class_embeddings_input_dim.value_or(0));
  } else {
    DUALIGN_CHECK(!projection_class_embeddings_input_dim,
                  "{}: projection_class_embeddings_input_dim is used only with addition_embed_type text_time "
                  "(class_embed_type projection is not supported)", origin);
  }
}

nlohmann::json UNetConfig::to_json() const {
  auto maybe_list = [](const std::vector<int64_t>& v) -> nlohmann::json {
    if (v.size() == 1) return v[0];
    return v;
  };
  nlohmann::json j = {
      {"_class_name", "UNet2DConditionModel"},
      {"sample_size", sample_size},
      {"in_channels", in_channels},
      {"out_channels", out_channels},
      {"center_input_sample", center_input_sample},
      {"flip_sin_to_cos", flip_sin_to_cos},
      {"freq_shift", freq_shift},
      {"down_block_types", down_block_types},
      {"mid_block_type", mid_block_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(mid_block_type)},
      {"up_block_types", up_block_types},
      {"block_out_channels", block_out_channels},
      {"layers_per_block", layers_per_block},
      {"downsample_padding", downsample_padding},
      {"mid_block_scale_factor", mid_block_scale_factor},
      {"act_fn", "silu"},
      {"norm_num_groups", norm_num_groups},
      {"norm_eps", norm_eps},
      {"cross_attention_dim", maybe_list(cross_attention_dim)},
      {"transformer_layers_per_block", maybe_list(transformer_layers_per_block)},
      {"attention_head_dim", maybe_list(num_attention_heads)},
      {"use_linear_projection", use_linear_projection},
      {"class_embed_type", class_embed_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(class_embed_type)},
      {"num_class_embeds", num_class_embeds ? nlohmann::json(*num_class_embeds) : nlohmann::json(nullptr)},
      {"addition_embed_type", addition_embed_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(addition_embed_type)},
      {"addition_time_embed_dim", text_time_conditional() ? nlohmann::json(addition_time_embed_dim) : nlohmann::json(nullptr)},
      {"projection_class_embeddings_input_dim", projection_class_embeddings_input_dim
                                                    ? nlohmann::json(*projection_class_embeddings_input_dim)
                                                    : nlohmann::json(nullptr)},
  };
  return j;
}

UNetConfig UNetConfig::sdxl_base() {
  UNetConfig c;
  c.sample_size = 128;
  c.down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"};
  c.up_block_types = {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
  c.block_out_channels = {320, 640, 1280};
  c.cross_attention_dim = {2048};
  c.transformer_layers_per_block = {1, 2, 10};
  c.num_attention_heads = {5, 10, 20};
  c.use_linear_projection = true;
  c.addition_embed_type = "text_time";
  c.addition_time_embed_dim = 256;
  c.projection_class_embeddings_input_dim = 2816;  // 1280 (pooled OpenCLIP bigG) + 6 time ids x 256
  return c;
}

}  // namespace dualign::models
