#include "models/score_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <yaml-cpp/yaml.h>

#include "ckpt/checkpoint.h"
#include "ckpt/state.h"
#include "ckpt/store.h"
#include "config/config.h"
#include "models/diffusers_io.h"
#include "models/mlp_score.h"
#include "models/unet.h"
#include "util/error.h"

namespace dualign::models {

int64_t ScoreModel::num_parameters() {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

void ScoreModel::freeze(torch::ScalarType dtype) {
  module().eval();
  module().to(dtype);
  for (auto& p : parameters()) p.set_requires_grad(false);
}

namespace {

class MlpScoreModel : public ScoreModel {
 public:
  explicit MlpScoreModel(ScoreMLPConfig cfg) : net_(cfg) {}
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const data::Condition& cond) override {
    DUALIGN_CHECK(!cond.text.defined(), "the MLP score model has no text conditioning (got text embeddings)");
    const auto dtype = net_->parameters().front().scalar_type();  // bf16 when frozen as a reference
    if (cond.class_id.defined()) {
      DUALIGN_CHECK(net_->config().num_classes > 0,
                    "class ids given to an unconditional MLP (set model.num_classes to condition on classes)");
      return net_->forward(x_t.to(dtype), t, cond.class_id).to(x_t.scalar_type());
    }
    return net_->forward(x_t.to(dtype), t).to(x_t.scalar_type());
  }
  torch::nn::Module& module() override { return *net_; }
  std::string describe() const override {
    const auto& c = net_->config();
    return fmt::format("ScoreMLP(dim={}, hidden={}, depth={}, classes={})", c.data_dim, c.hidden, c.depth,
                       c.num_classes);
  }
  std::vector<int64_t> sample_shape() const override { return {net_->config().data_dim}; }
  int64_t num_classes() const override { return net_->config().num_classes; }
  bool text_conditional() const override { return false; }

 private:
  ScoreMLP net_;
};

// diffusers' UNet2DConditionModel: class ids go to its class embedding, text embeddings to cross-attention.
class UNetScoreModel : public ScoreModel {
 public:
  explicit UNetScoreModel(UNet2DConditionModel net) : net_(std::move(net)) {}
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const data::Condition& cond) override {
    const auto& c = net_->config();
    DUALIGN_CHECK(cond.class_id.defined() == c.class_conditional(),
                  "UNet is {}class-conditional but the batch {} class ids", c.class_conditional() ? "" : "not ",
                  cond.class_id.defined() ? "has" : "has no");
    DUALIGN_CHECK(cond.text.defined() == net_->has_cross_attention(),
                  "UNet {} cross-attention but the batch {} text embeddings",
                  net_->has_cross_attention() ? "has" : "has no", cond.text.defined() ? "has" : "has no");
    const auto dtype = net_->parameters().front().scalar_type();  // bf16 when frozen as a reference
    auto text = cond.text.defined() ? cond.text.to(dtype) : cond.text;
    return net_->forward(x_t.to(dtype), t, text, cond.class_id).to(x_t.scalar_type());
  }
  torch::nn::Module& module() override { return *net_; }
  std::string describe() const override {
    const auto& c = net_->config();
    return fmt::format("UNet2DConditionModel(in={}, channels={}, blocks={}, classes={}, cross_attention={})",
                       c.in_channels, c.block_out_channels, c.down_block_types,
                       c.num_class_embeds.value_or(0), net_->has_cross_attention());
  }
  std::vector<int64_t> sample_shape() const override {
    const auto& c = net_->config();
    return {c.in_channels, c.sample_size, c.sample_size};
  }
  int64_t num_classes() const override { return std::max<int64_t>(net_->config().num_class_embeds.value_or(0) - 1, 0); }
  bool text_conditional() const override { return net_->has_cross_attention(); }

 private:
  UNet2DConditionModel net_;
};

std::shared_ptr<ScoreModel> build_mlp(const config::Section& m) {
  ScoreMLPConfig c;
  c.data_dim = m.get<int64_t>("data_dim");
  c.hidden = m.get<int64_t>("hidden");
  c.depth = m.get<int64_t>("depth");
  c.time_embed_dim = m.get<int64_t>("time_embed_dim", c.time_embed_dim);
  c.num_classes = m.get<int64_t>("num_classes", 0);
  return std::make_shared<MlpScoreModel>(c);
}

// Keys of the model section that are dualign's, not diffusers'.
const std::vector<std::string> kOwnKeys{"kind", "init_from", "init_weights", "pretrained", "gradient_checkpointing"};

std::shared_ptr<ScoreModel> build_unet(const config::Section& m) {
  const auto pretrained = m.get<std::string>("pretrained", "");
  const bool checkpointing = m.get<bool>("gradient_checkpointing", false);
  UNet2DConditionModel net{nullptr};
  if (!pretrained.empty()) {
    net = load_diffusers_unet(pretrained);  // its own config.json; the section's keys must not disagree
  } else {
    net = UNet2DConditionModel(
        UNetConfig::from_yaml(m.node(), "config section '" + m.prefix() + "'", kOwnKeys));
  }
  net->set_gradient_checkpointing(checkpointing);
  return std::make_shared<UNetScoreModel>(net);
}

}  // namespace

std::string resolve_checkpoint(const std::string& path) {
  std::string p = path;
  if (std::filesystem::is_directory(p) && std::filesystem::exists(std::filesystem::path(p) / "ckpt"))
    p = (std::filesystem::path(p) / "ckpt").string();  // a run dir
  return ckpt::CheckpointStore::resolve(p);
}

void load_weights(ScoreModel& model, const std::string& checkpoint, bool prefer_ema) {
  const auto file = resolve_checkpoint(checkpoint);
  ckpt::CheckpointReader reader(file);
  const std::string group = prefer_ema && reader.has_group("ema") ? "ema" : "model";
  DUALIGN_CHECK(reader.has_group(group), "checkpoint {} has no '{}' group", file, group);
  reader.load_into(group, ckpt::module_state(model.module()));
}

std::shared_ptr<ScoreModel> build_score_model(const config::Section& model, const torch::Device& device) {
  auto kind = model.get<std::string>("kind");
  const auto init_from = model.get<std::string>("init_from", "");
  const auto init_weights = model.get<std::string>("init_weights", "ema");
  DUALIGN_CHECK(init_weights == "ema" || init_weights == "model", "config key '{}': expected ema or model, got '{}'",
                model.path("init_weights"), init_weights);
  std::shared_ptr<ScoreModel> built;
  if (kind == "mlp") {
    built = build_mlp(model);
    model.finish({"kind"});
  } else if (kind == "unet") {
    built = build_unet(model);  // validates the diffusers keys itself
  } else {
    fail("config key '{}': unknown model kind '{}' (known: mlp, unet)", model.path("kind"), kind);
  }
  if (!init_from.empty()) load_weights(*built, init_from, init_weights == "ema");
  built->module().to(device);
  return built;
}

std::shared_ptr<ScoreModel> load_score_model(const std::string& checkpoint, const torch::Device& device,
                                             bool prefer_ema) {
  const auto file = resolve_checkpoint(checkpoint);
  ckpt::CheckpointReader reader(file);
  DUALIGN_CHECK(reader.has_text("config_yaml"), "checkpoint {} has no config_yaml text: not written by dualign train",
                file);
  config::Composed composed;
  composed.config = composed.resolved = YAML::Load(reader.text("config_yaml"));
  config::Config cfg(std::move(composed));
  auto section = cfg.section("model");
  auto kind = section.get<std::string>("kind");
  std::shared_ptr<ScoreModel> built = kind == "mlp" ? build_mlp(section) : kind == "unet" ? build_unet(section) : nullptr;
  DUALIGN_CHECK(built, "checkpoint {}: unknown model kind '{}'", file, kind);
  load_weights(*built, file, prefer_ema);
  built->module().to(device);
  return built;
}

}  // namespace dualign::models
