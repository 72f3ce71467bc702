#include "rewards/clip_rewards.h"

#include <fmt/format.h>

#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "models/clip_preprocess.h"
#include "models/clip_vision.h"
#include "models/diffusers_io.h"
#include "models/safetensors.h"
#include "rewards/reward.h"
#include "util/error.h"

namespace dualign::rewards {
namespace {

// A frozen CLIP image tower and its preprocessing. Towers are shared between rewards of one process (the CLIP
// score and the aesthetic predictor both run CLIP ViT-L/14): one copy per (weights, device, checkpointing).
struct Tower {
  models::ClipVisionModel model{nullptr};
  models::ClipPreprocess preprocess;
  std::optional<double> logit_scale;
  torch::Tensor embed(const torch::Tensor& images) { return model->forward(preprocess(images)); }
};

std::shared_ptr<Tower> shared_tower(const std::string& key, const std::function<std::shared_ptr<Tower>()>& load) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<Tower>> towers;
  std::lock_guard lock(mutex);
  if (auto t = towers[key].lock()) return t;
  auto t = load();
  for (auto& p : t->model->parameters()) p.set_requires_grad(false);
  towers[key] = t;
  return t;
}

std::shared_ptr<Tower> transformers_tower(const std::string& dir, const torch::Device& device, bool checkpointing) {
  return shared_tower(fmt::format("{}|{}|{}", dir, device.str(), checkpointing), [&] {
    auto loaded = models::load_clip_vision(dir);
    auto t = std::make_shared<Tower>();
    t->model = loaded.model;
    t->preprocess = models::ClipPreprocess::for_tower(loaded.model->config().image_size, loaded.preprocessor);
    t->logit_scale = loaded.logit_scale;
    t->model->set_gradient_checkpointing(checkpointing);
    t->model->to(device);
    return t;
  });
}

// HPSv2: open_clip `visual.*` tensors in a safetensors file whose metadata `open_clip_config` holds the tower's
// shape (written by data_tools/encode_reward_prompts.py: width, layers, heads, patch_size, image_size, embed_dim).
std::shared_ptr<Tower> open_clip_tower(const std::string& file, const torch::Device& device, bool checkpointing) {
  return shared_tower(fmt::format("{}|{}|{}", file, device.str(), checkpointing), [&] {
    std::map<std::string, std::string> meta;
    auto state = models::load_safetensors(file, &meta);
    DUALIGN_CHECK(meta.count("open_clip_config"), "{}: no open_clip_config metadata (convert the HPSv2 checkpoint with "
                                                  "data_tools/encode_reward_prompts.py --export-visual)", file);
    auto j = nlohmann::json::parse(meta.at("open_clip_config"));
    models::ClipVisionConfig c;
    c.hidden_size = j.at("width");
    c.num_hidden_layers = j.at("layers");
    c.num_attention_heads = j.at("heads");
    c.patch_size = j.at("patch_size");
    c.image_size = j.at("image_size");
    c.projection_dim = j.at("embed_dim");
    c.intermediate_size = j.value("mlp_width", c.hidden_size * 4);
    c.hidden_act = j.value("quick_gelu", false) ? "quick_gelu" : "gelu";
    auto t = std::make_shared<Tower>();
    t->model = models::ClipVisionModel(c);
    models::load_open_clip_visual(t->model, state, file);
    t->preprocess = models::ClipPreprocess::for_tower(c.image_size, nullptr);
    t->preprocess.resize = "pad";  // hpsv2's evaluation transform: ResizeMaxSize (bicubic) + zero padding
    t->model->set_gradient_checkpointing(checkpointing);
    t->model->to(device);
    return t;
  });
}

// Row `prompt` of the `text_embeds` [P, D] tensor of a file written by data_tools/encode_reward_prompts.py.
torch::Tensor read_text_embedding(const config::Section& s, int64_t dim, const torch::Device& device) {
  const auto file = s.get<std::string>("text_embeddings");
  std::map<std::string, std::string> meta;
  auto tensors = models::load_safetensors(file, &meta);
  auto it = tensors.find("text_embeds");
  DUALIGN_CHECK(it != tensors.end(), "config key '{}': {} has no 'text_embeds' tensor", s.path("text_embeddings"), file);
  const auto& all = it->second;
  DUALIGN_CHECK(all.dim() == 2 && all.size(1) == dim, "config key '{}': text_embeds of {} is {}, the image tower "
                "projects to {} (embed the prompts with the same CLIP)", s.path("text_embeddings"), file,
                c10::str(all.sizes()), dim);
  const int64_t rows = all.size(0);
  const int64_t prompt = rows == 1 ? s.get<int64_t>("prompt", 0) : s.get<int64_t>("prompt");
  DUALIGN_CHECK(prompt >= 0 && prompt < rows, "config key '{}': prompt {} is out of range ({} has {} prompts{})",
                s.path("prompt"), prompt, file, rows, meta.count("prompts") ? ": " + meta.at("prompts") : "");
  return all[prompt].to(device, torch::kFloat32);
}

torch::Tensor normalized(const torch::Tensor& v) { return v / v.norm(2, {-1}, true); }

class ClipReward : public Reward {
 public:
  enum class Kind { pickscore, clip_score, hpsv2, aesthetic };
  ClipReward(Kind kind, std::shared_ptr<Tower> tower, torch::Tensor text, AestheticHead head, std::string source)
      : kind_(kind), tower_(std::move(tower)), text_(text.defined() ? normalized(text) : text), head_(std::move(head)), source_(std::move(source)) {}

  std::string describe() const override {
    static const char* formulas[] = {"logit_scale.exp() * cos(text, image)", "100 * max(cos(text, image), 0)",
                                     "cos(text, image)", "aesthetic MLP(image / |image|)"};
    return fmt::format("{} ({}): {}", name(), source_, formulas[static_cast<int>(kind_)]);
  }

  torch::Tensor score(const torch::Tensor& x, const data::Condition&) override {
    torch::AutoGradMode grad_mode(torch::GradMode::is_enabled() && x.requires_grad());
    auto image = normalized(tower_->embed(x.to(text_.defined() ? text_.device() : device_of_tower())));
    torch::Tensor r;
    switch (kind_) {
      case Kind::pickscore: r = std::exp(*tower_->logit_scale) * (image * text_).sum(-1); break;
      case Kind::clip_score: r = 100.0 * (image * text_).sum(-1).clamp_min(0); break;
      case Kind::hpsv2: r = (image * text_).sum(-1); break;
      case Kind::aesthetic: r = head_->forward(image).squeeze(-1); break;
    }
    return r.to(x.device(), torch::kFloat32);
  }

 private:
  std::string name() const {
    static const char* names[] = {"pickscore", "clip_score", "hpsv2", "aesthetic"};
    return names[static_cast<int>(kind_)];
  }
  torch::Device device_of_tower() const { return tower_->model->parameters().front().device(); }

  Kind kind_;
  std::shared_ptr<Tower> tower_;
  torch::Tensor text_;
  AestheticHead head_{nullptr};
  std::string source_;
};

}  // namespace

AestheticHeadImpl::AestheticHeadImpl(int64_t input_size) {
  auto layers = register_module("layers", std::make_shared<torch::nn::Module>());
  const std::pair<const char*, std::pair<int64_t, int64_t>> shapes[] = {
      {"0", {input_size, 1024}}, {"2", {1024, 128}}, {"4", {128, 64}}, {"6", {64, 16}}, {"7", {16, 1}}};
  for (const auto& [name, io] : shapes) linears_.push_back(layers->register_module(name, torch::nn::Linear(io.first, io.second)));
}

torch::Tensor AestheticHeadImpl::forward(const torch::Tensor& x) {
  auto h = x;
  for (auto& l : linears_) h = l(h);  // no activations: the published predictor is linear (dropouts are identities)
  return h;
}

bool is_clip_reward(const std::string& kind) {
  return kind == "pickscore" || kind == "clip_score" || kind == "hpsv2" || kind == "aesthetic";
}

std::unique_ptr<Reward> make_clip_reward(const config::Section& s, const torch::Device& device) {
  const auto kind = s.get<std::string>("kind");
  const bool checkpointing = s.get<bool>("gradient_checkpointing", false);
  const bool hps = kind == "hpsv2";
  const auto source = s.get<std::string>(hps ? "visual" : "model");
  std::shared_ptr<Tower> tower;
  try {
    tower = hps ? open_clip_tower(source, device, checkpointing) : transformers_tower(source, device, checkpointing);
  } catch (const Error& e) {
    fail("config key '{}': {}", s.path(hps ? "visual" : "model"), e.what());
  }
  if (s.has("preprocess")) {
    auto custom = std::make_shared<Tower>(*tower);  // same weights, own preprocessing
    custom->preprocess.override_from(s.section("preprocess"));
    tower = custom;
  }
  DUALIGN_CHECK(tower->preprocess.output_side() == tower->model->config().image_size,
                "config key '{}': preprocessing makes {}px images, the tower takes {}px", s.path("preprocess"),
                tower->preprocess.output_side(), tower->model->config().image_size);
  const int64_t dim = tower->model->config().projection_dim;
  ClipReward::Kind k = ClipReward::Kind::aesthetic;
  torch::Tensor text;
  AestheticHead head{nullptr};
  if (kind == "aesthetic") {
    const auto path = s.get<std::string>("head");
    DUALIGN_CHECK(path.ends_with(".safetensors"), "config key '{}': expected the head as .safetensors (convert a .pth "
                  "with data_tools/encode_reward_prompts.py --convert-head), got {}", s.path("head"), path);
    head = AestheticHead(dim);
    models::load_state_dict(*head, models::load_safetensors(path), path);
    for (auto& p : head->parameters()) p.set_requires_grad(false);
    head->to(device);
  } else {
    k = kind == "pickscore" ? ClipReward::Kind::pickscore : kind == "clip_score" ? ClipReward::Kind::clip_score
                                                                                  : ClipReward::Kind::hpsv2;
    text = read_text_embedding(s, dim, device);
    DUALIGN_CHECK(k != ClipReward::Kind::pickscore || tower->logit_scale,
                  "config key '{}': {} has no logit_scale (PickScore needs a full CLIPModel checkpoint)", s.path("model"),
                  source);
  }
  s.finish();
  return std::make_unique<ClipReward>(k, tower, text, head, source);
}

}  // namespace dualign::rewards
