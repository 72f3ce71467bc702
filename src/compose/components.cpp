#include "compose/components.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>

#include "ckpt/checkpoint.h"
#include "eval/samples_io.h"
#include "util/error.h"

namespace dualign::compose {

EpsFn model_eps(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule) {
  return [&model, &schedule](const torch::Tensor& x, const torch::Tensor& t) {
    return schedule.predict_eps(x, model.forward(x, t, {}), t);
  };
}

EpsFn class_eps(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule, int64_t class_id, double guidance) {
  return [&model, &schedule, class_id, guidance](const torch::Tensor& x, const torch::Tensor& t) {
    auto labels = [&](int64_t c) {
      data::Condition cond;
      cond.class_id = torch::full({x.size(0)}, c, torch::dtype(torch::kLong).device(x.device()));
      return cond;
    };
    auto eps_c = schedule.predict_eps(x, model.forward(x, t, labels(class_id)), t);
    if (guidance == 1.0) return eps_c;
    auto eps_null = schedule.predict_eps(x, model.forward(x, t, labels(model.num_classes())), t);
    return eps_null + guidance * (eps_c - eps_null);
  };
}

EpsFn prompt_eps(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule, torch::Tensor text,
                 torch::Tensor negative, double guidance) {
  return [&model, &schedule, text = std::move(text), negative = std::move(negative), guidance](const torch::Tensor& x,
                                                                                               const torch::Tensor& t) {
    const int64_t b = x.size(0);
    auto rows = [&](const torch::Tensor& e) { return e.to(x.device()).expand({b, -1, -1}); };
    data::Condition cond;
    if (guidance == 1.0) {
      cond.text = rows(text);
      return schedule.predict_eps(x, model.forward(x, t, cond), t);
    }
    cond.text = torch::cat({rows(negative), rows(text)});  // [∅; p], as the SD pipeline batches them
    auto both = schedule.predict_eps(torch::cat({x, x}), model.forward(torch::cat({x, x}), torch::cat({t, t}), cond),
                                     torch::cat({t, t}));
    auto eps_null = both.narrow(0, 0, b), eps_p = both.narrow(0, b, b);
    return eps_null + guidance * (eps_p - eps_null);
  };
}

EpsFn gmm_eps(const data::Gmm& gmm, const diffusion::NoiseSchedule& schedule) {
  return [gmm, &schedule](const torch::Tensor& x, const torch::Tensor& t) {
    auto out = torch::empty_like(x);
    auto tc = t.to(torch::kCPU);
    // Rows share a timestep in every caller's hot path; group by value to keep it one call per level.
    auto values = std::get<0>(at::_unique(tc));
    for (int64_t k = 0; k < values.numel(); ++k) {
      const int64_t tv = values[k].item<int64_t>();
      auto rows = (tc == tv).nonzero().squeeze(1).to(x.device());
      const double ab = schedule.alpha_bar(tv), a = std::sqrt(ab), s = std::sqrt(1 - ab);
      auto score = gmm.noised_score(x.index_select(0, rows).cpu(), a, s);
      out.index_copy_(0, rows, (-s * score).to(x.scalar_type()).to(x.device()));
    }
    return out;
  };
}

LoadedModels load_models(const std::vector<std::string>& checkpoints, const torch::Device& device) {
  DUALIGN_CHECK(checkpoints.size() >= 2, "composition needs at least 2 models, got {}", checkpoints.size());
  LoadedModels out;
  for (const auto& c : checkpoints) {
    auto m = eval::load_trained_model(c, device);
    m.model->freeze();
    out.models.push_back(std::move(m));
  }
  const auto& first = out.models.front();
  out.sample_shape = first.model->sample_shape();
  const auto& ref = first.schedule->alphas_cumprod();
  for (const auto& m : out.models) {
    DUALIGN_CHECK(m.model->sample_shape() == out.sample_shape, "model {} draws samples of shape {}, but {} draws {}",
                  m.checkpoint, fmt::format("{}", m.model->sample_shape()), first.checkpoint, fmt::format("{}", out.sample_shape));
    const auto& ac = m.schedule->alphas_cumprod();
    DUALIGN_CHECK(ac.numel() == ref.numel() && torch::equal(ac, ref),
                  "model {} was trained with another noise schedule than {} (the composed score needs one schedule)",
                  m.checkpoint, first.checkpoint);
  }
  for (auto& m : out.models) {
    auto p = std::filesystem::path(m.checkpoint);
    // <run>/ckpt/ckpt-N.h5 → <run>
    std::string name = p.parent_path().filename() == "ckpt" ? p.parent_path().parent_path().string() : p.string();
    out.components.push_back({name, model_eps(*m.model, *m.schedule)});
  }
  return out;
}

namespace {

// A frozen class-conditional checkpoint that has every class of `classes`; errors name `what` (the flag or key).
eval::TrainedModel load_class_model(const std::string& checkpoint, const std::vector<int64_t>& classes,
                                    const std::string& what, const torch::Device& device) {
  auto m = eval::load_trained_model(checkpoint, device);
  m.model->freeze();
  const int64_t k = m.model->num_classes();
  DUALIGN_CHECK(k > 0, "model {} is not class-conditional, but {} gives classes", m.checkpoint, what);
  for (int64_t c : classes)
    DUALIGN_CHECK(c >= 0 && c < k, "{}: class {} of model {} (expected 0 .. {})", what, c, m.checkpoint, k - 1);
  return m;
}

}  // namespace

LoadedModels load_class_components(const std::string& checkpoint, const std::vector<int64_t>& classes,
                                   double guidance, const torch::Device& device) {
  DUALIGN_CHECK(classes.size() >= 2, "concept composition needs at least 2 classes, got {}", classes.size());
  LoadedModels out;
  auto m = load_class_model(checkpoint, classes, "--classes", device);
  for (size_t i = 0; i < classes.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      DUALIGN_CHECK(classes[j] != classes[i], "--classes: class {} given twice", classes[i]);
  }
  out.sample_shape = m.model->sample_shape();
  out.models.push_back(std::move(m));
  auto& model = out.models.front();
  for (int64_t c : classes)
    out.components.push_back({fmt::format("class {}", c), class_eps(*model.model, *model.schedule, c, guidance)});
  return out;
}

namespace {

// A text-conditional model and one prompts file (data_tools/encode_prompts.py), checked against each other.
struct TextModel {
  eval::TrainedModel model;
  eval::Prompts prompts;
  torch::Tensor negative;  // [1, L, D] float32, the empty prompt's; undefined when the file has none
};

TextModel load_text_model(const std::string& model, const std::string& prompts_file, double guidance,
                          const torch::Device& device) {
  TextModel out;
  out.prompts = eval::read_prompts(prompts_file);
  DUALIGN_CHECK(!out.prompts.pooled.defined(), "{}: SDXL prompt files (pooled embeddings) are not supported here yet; "
                "use an SD-1.5-style model", prompts_file);
  out.negative = out.prompts.negative_text_embedding;
  DUALIGN_CHECK(guidance == 1.0 || out.negative.defined(), "guidance {}: {} has no negative_text_embedding (write it "
                "with data_tools/encode_prompts.py, which stores the empty prompt's)", guidance, prompts_file);
  if (out.negative.defined()) {
    DUALIGN_CHECK(out.negative.size(0) == 1, "{}: expected one negative_text_embedding row (the empty prompt's), "
                  "got {}", prompts_file, out.negative.size(0));
    out.negative = out.negative.to(torch::kFloat32);
  }
  out.model = eval::load_model_with_schedule(model, device);
  DUALIGN_CHECK(out.model.model->text_conditional(), "model {} is not text-conditional, but a prompts file ({}) was "
                "given", out.model.checkpoint, prompts_file);
  out.model.model->freeze();
  return out;
}

torch::Tensor prompt_row(const TextModel& t, int64_t i, const std::string& prompts_file) {
  auto text = t.prompts.text_embedding.narrow(0, i, 1).to(torch::kFloat32);
  DUALIGN_CHECK(!t.negative.defined() || t.negative.sizes() == text.sizes(), "{}: the negative embedding is {}, "
                "prompt {} is {}", prompts_file, c10::str(t.negative.sizes()), i, c10::str(text.sizes()));
  return text;
}

// One condition of a conditional model, seen as an unconditional ε model: calls take no condition and return the
// guided ε of `eps` (built on the base model this object owns, so it lives as long as they do).
class ConditionedModel : public models::ScoreModel {
 public:
  ConditionedModel(eval::TrainedModel base, std::string condition)
      : base_(std::move(base)), condition_(std::move(condition)) {}
  eval::TrainedModel& base() { return base_; }
  void set_eps(EpsFn eps) { eps_ = std::move(eps); }
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const data::Condition& cond) override {
    DUALIGN_CHECK(!cond.class_id.defined() && !cond.text.defined(), "{}: the condition is fixed; calls take none",
                  describe());
    return eps_(x_t, t);
  }
  torch::nn::Module& module() override { return base_.model->module(); }
  std::string describe() const override { return fmt::format("{} at {}", base_.model->describe(), condition_); }
  std::vector<int64_t> sample_shape() const override { return base_.model->sample_shape(); }
  int64_t num_classes() const override { return 0; }
  bool text_conditional() const override { return false; }
  void to(const torch::Device& device) override { base_.model->to(device); }

 private:
  eval::TrainedModel base_;
  std::string condition_;
  EpsFn eps_;
};

}  // namespace

LoadedModels load_prompt_components(const std::string& model, const std::string& prompts_file, double guidance,
                                    const torch::Device& device) {
  auto text = load_text_model(model, prompts_file, guidance, device);
  const int64_t p = text.prompts.text_embedding.size(0);
  DUALIGN_CHECK(p >= 2, "concept composition needs at least 2 prompts, {} has {}", prompts_file, p);
  LoadedModels out;
  out.sample_shape = text.model.model->sample_shape();
  out.models.push_back(std::move(text.model));
  auto& loaded = out.models.front();
  for (int64_t i = 0; i < p; ++i) {
    out.components.push_back({fmt::format("prompt {}: {}", i, text.prompts.prompt[size_t(i)]),
                              prompt_eps(*loaded.model, *loaded.schedule, prompt_row(text, i, prompts_file),
                                         text.negative, guidance)});
  }
  return out;
}

eval::TrainedModel load_conditioned_model(const std::string& model, const Condition& condition,
                                          const torch::Device& device) {
  const bool by_class = condition.class_id >= 0;
  DUALIGN_CHECK(by_class != !condition.prompts_file.empty(), "a condition is either a class or a prompt of a "
                "prompts file (got class {} and prompts '{}')", condition.class_id, condition.prompts_file);
  DUALIGN_CHECK(condition.guidance >= 1.0, "condition guidance must be >= 1, got {}", condition.guidance);
  std::shared_ptr<ConditionedModel> conditioned;
  if (by_class) {
    auto base = load_class_model(model, {condition.class_id}, "the condition", device);
    conditioned = std::make_shared<ConditionedModel>(
        std::move(base), fmt::format("class {} (guidance {})", condition.class_id, condition.guidance));
    auto& b = conditioned->base();
    conditioned->set_eps(class_eps(*b.model, *b.schedule, condition.class_id, condition.guidance));
  } else {
    auto text = load_text_model(model, condition.prompts_file, condition.guidance, device);
    const int64_t p = text.prompts.text_embedding.size(0);
    DUALIGN_CHECK(condition.prompt >= 0 && condition.prompt < p, "prompt {} of {} (it has {} prompts)",
                  condition.prompt, condition.prompts_file, p);
    auto row = prompt_row(text, condition.prompt, condition.prompts_file);
    conditioned = std::make_shared<ConditionedModel>(
        std::move(text.model), fmt::format("prompt {} '{}' (guidance {})", condition.prompt,
                                           text.prompts.prompt[size_t(condition.prompt)], condition.guidance));
    auto& b = conditioned->base();
    conditioned->set_eps(prompt_eps(*b.model, *b.schedule, row, text.negative, condition.guidance));
  }
  eval::TrainedModel out;
  out.schedule = std::make_unique<diffusion::NoiseSchedule>(epsilon_schedule(*conditioned->base().schedule));
  out.checkpoint = conditioned->base().checkpoint;
  out.model = std::move(conditioned);
  return out;
}

namespace {

class FixedClassModel : public models::ScoreModel {
 public:
  FixedClassModel(std::shared_ptr<models::ScoreModel> inner, int64_t class_id)
      : inner_(std::move(inner)), class_id_(class_id) {}
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const data::Condition& cond) override {
    if (cond.class_id.defined()) return inner_->forward(x_t, t, cond);
    data::Condition with_class = cond;
    with_class.class_id = torch::full({x_t.size(0)}, class_id_, torch::dtype(torch::kLong).device(x_t.device()));
    return inner_->forward(x_t, t, with_class);
  }
  torch::nn::Module& module() override { return inner_->module(); }
  std::string describe() const override { return fmt::format("{} at class {}", inner_->describe(), class_id_); }
  std::vector<int64_t> sample_shape() const override { return inner_->sample_shape(); }
  int64_t num_classes() const override { return 0; }  // seen as unconditional
  bool text_conditional() const override { return inner_->text_conditional(); }
  void to(const torch::Device& device) override { inner_->to(device); }

 private:
  std::shared_ptr<models::ScoreModel> inner_;
  int64_t class_id_;
};

}  // namespace

std::shared_ptr<models::ScoreModel> fixed_class_model(std::shared_ptr<models::ScoreModel> model, int64_t class_id) {
  DUALIGN_CHECK(class_id >= 0 && class_id < model->num_classes(), "class {} of a model with {} classes", class_id,
                model->num_classes());
  return std::make_shared<FixedClassModel>(std::move(model), class_id);
}

std::optional<data::Gmm> training_gmm(const std::string& checkpoint) {
  ckpt::CheckpointReader reader(models::resolve_checkpoint(checkpoint));
  if (!reader.has_text("config_yaml")) return std::nullopt;
  auto data = YAML::Load(reader.text("config_yaml"))["data"];
  if (!data || !data["kind"] || data["kind"].as<std::string>() != "gmm") return std::nullopt;
  return data::Gmm(data["means"].as<std::vector<std::vector<double>>>(), data["weights"].as<std::vector<double>>(),
                   data["std"].as<double>());
}

torch::Tensor weighted_sum(const std::vector<torch::Tensor>& eps, const std::vector<double>& lambda) {
  DUALIGN_CHECK(eps.size() == lambda.size() && !eps.empty(), "weighted sum of {} predictions with {} weights",
                eps.size(), lambda.size());
  auto out = eps[0] * lambda[0];
  for (size_t i = 1; i < eps.size(); ++i) out = out + eps[i] * lambda[i];
  return out;
}

EpsFn composed_eps(const std::vector<Component>& components, const std::vector<double>& lambda) {
  DUALIGN_CHECK(components.size() == lambda.size(), "{} components but {} weights", components.size(), lambda.size());
  return [components, lambda](const torch::Tensor& x, const torch::Tensor& t) {
    std::vector<torch::Tensor> eps;
    for (const auto& c : components) eps.push_back(c.eps(x, t));
    return weighted_sum(eps, lambda);
  };
}

diffusion::NoiseSchedule epsilon_schedule(const diffusion::NoiseSchedule& schedule) {
  auto cfg = schedule.config();
  cfg.prediction = "epsilon";
  return diffusion::NoiseSchedule(cfg);
}

}  // namespace dualign::compose
