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
#include "models/lora.h"
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
    DUALIGN_CHECK(!cond.text.defined() && !cond.text_pooled.defined() && !cond.time_ids.defined(),
                  "the MLP score model has no text conditioning (got text embeddings, pooled or time ids)");
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
    const bool added = c.text_time_conditional();
    DUALIGN_CHECK(!added || (cond.text_pooled.defined() && cond.time_ids.defined()),
                  "UNet has SDXL's added conditioning (addition_embed_type text_time) but the batch has no {}",
                  cond.text_pooled.defined() ? "time_ids [B, 6]" : cond.time_ids.defined()
                                                                        ? "text_pooled (pooled text embeddings [B, D])"
                                                                        : "text_pooled [B, D] nor time_ids [B, 6]");
    DUALIGN_CHECK(added || (!cond.text_pooled.defined() && !cond.time_ids.defined()),
                  "UNet has no added conditioning (addition_embed_type is not text_time) but the batch has {}",
                  cond.text_pooled.defined() ? "pooled text embeddings" : "time ids");
    const auto dtype = net_->parameters().front().scalar_type();  // bf16 when frozen as a reference
    auto cast = [dtype](const torch::Tensor& x) { return x.defined() ? x.to(dtype) : x; };
    return net_->forward(x_t.to(dtype), t, cast(cond.text), cond.class_id, cast(cond.text_pooled), cond.time_ids)
        .to(x_t.scalar_type());
  }
  torch::nn::Module& module() override { return *net_; }
  std::string describe() const override {
    const auto& c = net_->config();
    return fmt::format("UNet2DConditionModel(in={}, channels={}, blocks={}, classes={}, cross_attention={}{})",
                       c.in_channels, c.block_out_channels, c.down_block_types,
                       c.num_class_embeds.value_or(0), net_->has_cross_attention(),
                       c.text_time_conditional() ? ", added=text_time" : "");
  }
  std::vector<int64_t> sample_shape() const override {
    const auto& c = net_->config();
    return {c.in_channels, c.sample_size, c.sample_size};
  }
  int64_t num_classes() const override {
    // class_embed_type "timestep" embeds real-valued labels: no null class
    const auto& c = net_->config();
    return c.num_class_embeds ? std::max<int64_t>(*c.num_class_embeds - 1, 0) : 0;
  }
  bool text_conditional() const override { return net_->has_cross_attention(); }

 private:
  UNet2DConditionModel net_;
};

// LoRA on a UNet: the base network is frozen and shared; module() is the adapter tree (trainable state).
class LoraScoreModel : public ScoreModel, public std::enable_shared_from_this<LoraScoreModel> {
 public:
  LoraScoreModel(std::shared_ptr<ScoreModel> base, const LoraConfig& config)
      : base_(std::move(base)), config_(config), adapters_(attach_lora(base_->module(), config)) {}
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const data::Condition& cond) override {
    return base_->forward(x_t, t, cond);
  }
  torch::nn::Module& module() override { return *adapters_; }
  std::string describe() const override {
    int64_t trainable = 0, frozen = 0;
    for (const auto& p : adapters_->parameters()) trainable += p.numel();
    for (const auto& p : base_->module().parameters()) frozen += p.numel();
    return fmt::format("{} + LoRA(rank {}, alpha {}, targets [{}]: {} trainable, {} frozen incl. adapters)",
                       base_->describe(), config_.rank, config_.alpha, fmt::join(config_.targets, ", "), trainable,
                       frozen);
  }
  std::vector<int64_t> sample_shape() const override { return base_->sample_shape(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  bool text_conditional() const override { return base_->text_conditional(); }
  std::shared_ptr<ScoreModel> base_view() override;
  void to(const torch::Device& device) override { base_->module().to(device); }

 private:
  std::shared_ptr<ScoreModel> base_;
  LoraConfig config_;
  std::shared_ptr<torch::nn::Module> adapters_;
};

// The LoRA model's network with every adapter bypassed. It owns the LoRA model (not just the base), so the
// adapters it bypasses stay alive as long as it does.
class AdaptersOffView : public ScoreModel {
 public:
  explicit AdaptersOffView(std::shared_ptr<ScoreModel> lora, ScoreModel& base) : lora_(std::move(lora)), base_(base) {}
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const data::Condition& cond) override {
    AdaptersDisabled off;
    return base_.forward(x_t, t, cond);
  }
  torch::nn::Module& module() override { return base_.module(); }  // frozen: nothing to train or checkpoint here
  std::string describe() const override { return base_.describe() + " (LoRA disabled)"; }
  std::vector<int64_t> sample_shape() const override { return base_.sample_shape(); }
  int64_t num_classes() const override { return base_.num_classes(); }
  bool text_conditional() const override { return base_.text_conditional(); }

 private:
  std::shared_ptr<ScoreModel> lora_;
  ScoreModel& base_;
};

std::shared_ptr<ScoreModel> LoraScoreModel::base_view() {
  return std::make_shared<AdaptersOffView>(shared_from_this(), *base_);
}

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
const std::vector<std::string> kOwnKeys{"kind", "init_from", "init_weights", "pretrained", "gradient_checkpointing",
                                        "lora"};

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

namespace {

// The network of the section without LoRA, with model.init_from's weights when `with_init` (a resumed or evaluated
// LoRA run needs them too: its checkpoint holds only the adapters).
std::shared_ptr<ScoreModel> build_network(const config::Section& model, bool with_init) {
  const auto kind = model.get<std::string>("kind");
  const auto init_from = model.get<std::string>("init_from", "");
  const auto init_weights = model.get<std::string>("init_weights", "ema");
  DUALIGN_CHECK(init_weights == "ema" || init_weights == "model", "config key '{}': expected ema or model, got '{}'",
                model.path("init_weights"), init_weights);
  std::shared_ptr<ScoreModel> built;
  if (kind == "mlp") {
    DUALIGN_CHECK(!model.has("lora"), "config key '{}': LoRA adapts the UNet's attention projections; model kind mlp "
                                      "has none", model.path("lora"));
    built = build_mlp(model);
    model.finish({"kind", "init_from", "init_weights"});
  } else if (kind == "unet") {
    built = build_unet(model);  // validates the diffusers keys itself
  } else {
    fail("config key '{}': unknown model kind '{}' (known: mlp, unet)", model.path("kind"), kind);
  }
  if (with_init && !init_from.empty()) load_weights(*built, init_from, init_weights == "ema");
  return built;
}

// The composed config a training run stored in its checkpoint.
config::Config run_config(const ckpt::CheckpointReader& reader) {
  DUALIGN_CHECK(reader.has_text("config_yaml"), "checkpoint {} has no config_yaml text: not written by dualign train",
                reader.path());
  config::Composed composed;
  composed.config = composed.resolved = YAML::Load(reader.text("config_yaml"));
  return config::Config(std::move(composed));
}

std::shared_ptr<ScoreModel> with_lora(std::shared_ptr<ScoreModel> base, const config::Section& model) {
  if (!model.has("lora")) return base;
  return std::make_shared<LoraScoreModel>(std::move(base), read_lora_config(model.section("lora")));
}

}  // namespace

UNetConfig unet_config(const config::Section& model) {
  DUALIGN_CHECK(model.get<std::string>("kind") == "unet", "config key '{}': a UNet architecture needs kind unet, got '{}'",
                model.path("kind"), model.get<std::string>("kind"));
  const auto pretrained = model.get<std::string>("pretrained", "");
  if (pretrained.empty())
    return UNetConfig::from_yaml(model.node(), "config section '" + model.prefix() + "'", kOwnKeys);
  try {
    return read_diffusers_unet_config(pretrained);
  } catch (const Error& e) {
    fail("config key '{}': {}", model.path("pretrained"), e.what());
  }
}

std::shared_ptr<ScoreModel> build_score_model(const config::Section& model, const torch::Device& device) {
  auto built = with_lora(build_network(model, /*with_init=*/true), model);
  built->to(device);
  return built;
}

std::shared_ptr<ScoreModel> load_diffusers_score_model(const std::string& dir, const torch::Device& device) {
  auto built = std::make_shared<UNetScoreModel>(load_diffusers_unet(dir));
  built->module().to(device);
  return built;
}

std::shared_ptr<ScoreModel> load_score_model(const std::string& checkpoint, const torch::Device& device,
                                             bool prefer_ema) {
  const auto file = resolve_checkpoint(checkpoint);
  const auto cfg = run_config(ckpt::CheckpointReader(file));
  auto section = cfg.section("model");
  // A LoRA checkpoint holds only the adapters: the base comes from model.pretrained / model.init_from again.
  auto built = with_lora(build_network(section, /*with_init=*/section.has("lora")), section);
  load_weights(*built, file, prefer_ema);
  built->to(device);
  return built;
}

void export_lora(const std::string& checkpoint, const std::string& out_dir, bool prefer_ema) {
  const auto file = resolve_checkpoint(checkpoint);
  ckpt::CheckpointReader reader(file);
  const auto cfg = run_config(reader);
  auto section = cfg.section("model");
  DUALIGN_CHECK(section.has("lora"), "checkpoint {}: the run has no model.lora, so there are no adapters to export", file);
  const std::string group = prefer_ema && reader.has_group("ema") ? "ema" : "model";
  save_lora_weights(reader.group(group), read_lora_config(section.section("lora")), out_dir);
}

}  // namespace dualign::models
