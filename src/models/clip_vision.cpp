#include "models/clip_vision.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "models/checkpoint.h"
#include "models/diffusers_io.h"
#include "models/linear.h"
#include "util/error.h"

namespace dualign::models {
namespace fs = std::filesystem;
namespace {

std::shared_ptr<torch::nn::Module> container(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  DUALIGN_CHECK(in.good(), "cannot open '{}'", path.string());
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("cannot parse '{}': {}", path.string(), e.what());
  }
}

// model.safetensors, or every shard named by model.safetensors.index.json.
TensorMap read_weights(const fs::path& dir) {
  if (fs::exists(dir / "model.safetensors")) return load_safetensors((dir / "model.safetensors").string());
  const auto index = dir / "model.safetensors.index.json";
  DUALIGN_CHECK(fs::exists(index),
                "CLIP directory '{}': no model.safetensors nor model.safetensors.index.json (a pytorch_model.bin must be "
                "converted to safetensors first, e.g. by loading and save_pretrained(safe_serialization=True))",
                dir.string());
  std::set<std::string> shards;
  for (const auto& [name, file] : read_json(index).at("weight_map").items()) shards.insert(file.get<std::string>());
  TensorMap all;
  for (const auto& shard : shards) all.merge(load_safetensors((dir / shard).string()));
  return all;
}

}  // namespace

ClipVisionConfig ClipVisionConfig::from_json(const nlohmann::json& j_in, const std::string& origin) {
  DUALIGN_CHECK(j_in.is_object(), "{}: a CLIP config must be a mapping", origin);
  const bool full = j_in.contains("vision_config");
  const auto& j = full ? j_in["vision_config"] : j_in;
  ClipVisionConfig c;
  auto get = [&](const nlohmann::json& src, const char* key, auto& field) {
    if (!src.contains(key) || src[key].is_null()) return;
    try {
      src[key].get_to(field);
    } catch (const std::exception& e) {
      fail("{}: key '{}' has the wrong type ({})", origin, key, e.what());
    }
  };
  get(j, "hidden_size", c.hidden_size);
  get(j, "intermediate_size", c.intermediate_size);
  get(j, "num_hidden_layers", c.num_hidden_layers);
  get(j, "num_attention_heads", c.num_attention_heads);
  get(j, "num_channels", c.num_channels);
  get(j, "image_size", c.image_size);
  get(j, "patch_size", c.patch_size);
  get(j, "hidden_act", c.hidden_act);
  get(j, "layer_norm_eps", c.layer_norm_eps);
  get(j, "projection_dim", c.projection_dim);  // CLIPVisionConfig
  if (full) get(j_in, "projection_dim", c.projection_dim);  // CLIPConfig: the shared projection size wins
  DUALIGN_CHECK(c.hidden_act == "quick_gelu" || c.hidden_act == "gelu",
                "{}: hidden_act '{}' is not supported (quick_gelu or gelu)", origin, c.hidden_act);
  DUALIGN_CHECK(c.hidden_size % c.num_attention_heads == 0, "{}: hidden_size {} is not divisible by {} heads", origin,
                c.hidden_size, c.num_attention_heads);
  DUALIGN_CHECK(c.image_size % c.patch_size == 0, "{}: image_size {} is not a multiple of patch_size {}", origin,
                c.image_size, c.patch_size);
  return c;
}

ClipVisionConfig ClipVisionConfig::vit_h14() {
  ClipVisionConfig c;
  c.hidden_size = 1280, c.intermediate_size = 5120, c.projection_dim = 1024, c.num_hidden_layers = 32;
  c.num_attention_heads = 16, c.patch_size = 14, c.hidden_act = "gelu";
  return c;
}

ClipVisionConfig ClipVisionConfig::vit_l14() {
  ClipVisionConfig c;
  c.hidden_size = 1024, c.intermediate_size = 4096, c.projection_dim = 768, c.num_hidden_layers = 24;
  c.num_attention_heads = 16, c.patch_size = 14;
  return c;
}

int64_t ClipVisionConfig::parameter_count() const {
  const int64_t d = hidden_size, positions = (image_size / patch_size) * (image_size / patch_size) + 1;
  const int64_t layer = 4 * (d * d + d) + 2 * d * intermediate_size + intermediate_size + d + 4 * d;
  return num_channels * patch_size * patch_size * d + d + positions * d + 4 * d + num_hidden_layers * layer +
         d * projection_dim;
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipVisionConfig& c)
    : heads_(c.num_attention_heads), quick_gelu_(c.hidden_act == "quick_gelu") {
  const int64_t d = c.hidden_size;
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(c.layer_norm_eps)); };
  self_attn = container(*this, "self_attn");
  k_proj = self_attn->register_module("k_proj", torch::nn::Linear(d, d));
  v_proj = self_attn->register_module("v_proj", torch::nn::Linear(d, d));
  q_proj = self_attn->register_module("q_proj", torch::nn::Linear(d, d));
  out_proj = self_attn->register_module("out_proj", torch::nn::Linear(d, d));
  layer_norm1 = register_module("layer_norm1", ln());
  mlp = container(*this, "mlp");
  fc1 = mlp->register_module("fc1", torch::nn::Linear(d, c.intermediate_size));
  fc2 = mlp->register_module("fc2", torch::nn::Linear(c.intermediate_size, d));
  layer_norm2 = register_module("layer_norm2", ln());
}

torch::Tensor ClipEncoderLayerImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), l = x.size(1);
  auto h = layer_norm1(x);
  auto split = [&](const torch::Tensor& t) { return t.view({b, l, heads_, -1}).transpose(1, 2); };
  auto o = at::scaled_dot_product_attention(split(linear(q_proj, h)), split(linear(k_proj, h)), split(linear(v_proj, h)));
  auto y = x + linear(out_proj, o.transpose(1, 2).reshape({b, l, -1}));
  auto m = linear(fc1, layer_norm2(y));
  m = quick_gelu_ ? m * torch::sigmoid(1.702 * m) : torch::gelu(m);
  return y + linear(fc2, m);
}

ClipVisionModelImpl::ClipVisionModelImpl(ClipVisionConfig config) : config_(std::move(config)) {
  const auto& c = config_;
  const int64_t d = c.hidden_size, positions = (c.image_size / c.patch_size) * (c.image_size / c.patch_size) + 1;
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(c.layer_norm_eps)); };
  auto vision = container(*this, "vision_model");
  auto embeddings = container(*vision, "embeddings");
  class_embedding = embeddings->register_parameter("class_embedding", torch::randn({d}));
  patch_embedding = embeddings->register_module(
      "patch_embedding",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(c.num_channels, d, c.patch_size).stride(c.patch_size).bias(false)));
  position_embedding = embeddings->register_module("position_embedding", torch::nn::Embedding(positions, d));
  pre_layrnorm = vision->register_module("pre_layrnorm", ln());
  auto encoder = container(*vision, "encoder");
  layers = encoder->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(ClipEncoderLayer(c));
  post_layernorm = vision->register_module("post_layernorm", ln());
  visual_projection = register_module("visual_projection", torch::nn::Linear(torch::nn::LinearOptions(d, c.projection_dim).bias(false)));
}

torch::Tensor ClipVisionModelImpl::forward(const torch::Tensor& pixel_values) {
  const auto& c = config_;
  DUALIGN_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == c.num_channels &&
                    pixel_values.size(2) == c.image_size && pixel_values.size(3) == c.image_size,
                "CLIP vision tower: expected pixel_values [B, {}, {}, {}], got {}", c.num_channels, c.image_size,
                c.image_size, c10::str(pixel_values.sizes()));
  const int64_t b = pixel_values.size(0);
  auto patches = patch_embedding(pixel_values).flatten(2).transpose(1, 2);  // [B, N, D]
  auto h = torch::cat({class_embedding.expand({b, 1, -1}), patches}, 1) + position_embedding->weight.unsqueeze(0);
  h = pre_layrnorm(h);
  const bool ckpt = checkpoint_ && torch::GradMode::is_enabled();
  for (auto& m : *layers) {
    auto layer = std::dynamic_pointer_cast<ClipEncoderLayerImpl>(m);
    if (!ckpt) {
      h = layer->forward(h);
      continue;
    }
    auto fn = [layer](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{layer->forward(in[0])}; };
    h = checkpoint(fn, {h}, layer->parameters())[0];
  }
  return linear(visual_projection, post_layernorm(h.select(1, 0)));
}

LoadedClipVision load_clip_vision(const std::string& dir_in) {
  const fs::path dir(dir_in);
  DUALIGN_CHECK(fs::exists(dir / "config.json"), "CLIP directory '{}': no config.json", dir_in);
  const auto config_json = read_json(dir / "config.json");
  LoadedClipVision out;
  out.model = ClipVisionModel(ClipVisionConfig::from_json(config_json, (dir / "config.json").string()));
  auto all = read_weights(dir);
  TensorMap vision;
  for (auto& [name, t] : all)
    if ((name.starts_with("vision_model.") && !name.ends_with("position_ids")) || name.starts_with("visual_projection."))
      vision[name] = t;
  load_state_dict(*out.model, vision, dir_in + " (vision tower)");
  if (auto it = all.find("logit_scale"); it != all.end()) out.logit_scale = it->second.item<double>();
  if (fs::exists(dir / "preprocessor_config.json")) out.preprocessor = read_json(dir / "preprocessor_config.json");
  out.model->eval();
  return out;
}

void load_open_clip_visual(ClipVisionModel& model, const TensorMap& state, const std::string& origin) {
  auto get = [&](const std::string& name) -> const torch::Tensor& {
    auto it = state.find("visual." + name);
    DUALIGN_CHECK(it != state.end(), "{}: open_clip tensor 'visual.{}' is missing", origin, name);
    return it->second;
  };
  TensorMap mapped;
  const std::string v = "vision_model.", e = "vision_model.embeddings.";
  mapped[e + "patch_embedding.weight"] = get("conv1.weight");
  mapped[e + "class_embedding"] = get("class_embedding");
  mapped[e + "position_embedding.weight"] = get("positional_embedding");
  for (const char* p : {"weight", "bias"}) {
    mapped[v + "pre_layrnorm." + p] = get(std::string("ln_pre.") + p);
    mapped[v + "post_layernorm." + p] = get(std::string("ln_post.") + p);
  }
  for (int64_t i = 0; i < model->config().num_hidden_layers; ++i) {
    const auto src = "transformer.resblocks." + std::to_string(i) + ".";
    const auto dst = v + "encoder.layers." + std::to_string(i) + ".";
    auto w = get(src + "attn.in_proj_weight").chunk(3, 0), bias = get(src + "attn.in_proj_bias").chunk(3, 0);
    const char* qkv[] = {"q_proj", "k_proj", "v_proj"};
    for (size_t k = 0; k < 3; ++k) {
      mapped[dst + "self_attn." + qkv[k] + ".weight"] = w[k];
      mapped[dst + "self_attn." + qkv[k] + ".bias"] = bias[k];
    }
    for (const char* p : {"weight", "bias"}) {
      mapped[dst + "self_attn.out_proj." + p] = get(src + "attn.out_proj." + p);
      mapped[dst + "layer_norm1." + p] = get(src + "ln_1." + p);
      mapped[dst + "layer_norm2." + p] = get(src + "ln_2." + p);
      mapped[dst + "mlp.fc1." + p] = get(src + "mlp.c_fc." + p);
      mapped[dst + "mlp.fc2." + p] = get(src + "mlp.c_proj." + p);
    }
  }
  mapped["visual_projection.weight"] = get("proj").t();  // open_clip computes x @ proj
  load_state_dict(*model, mapped, origin + " (open_clip visual tower)");
  model->eval();
}

}  // namespace dualign::models
