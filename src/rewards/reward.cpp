// The reward kinds of make_reward: gmm_target (analytic, 2-D toys) and classifier (a trained CNN's class
// probabilities, images) here; CLIP reward models (clip_rewards.h) and image statistics (image_statistics.h) in
// their files; the latents and zscore wrappers that any image reward can take.
#include "rewards/reward.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "config/config.h"
#include "rewards/classifier.h"
#include "rewards/clip_rewards.h"
#include "rewards/image_statistics.h"
#include "rewards/latent_decoding.h"
#include "util/error.h"

namespace dualign::rewards {
namespace {

// r(x) = -scale · ||x - target||² (the oracle of `dualign data gmm-pairs` when scale = 1).
class GmmTargetReward : public Reward {
 public:
  GmmTargetReward(std::vector<double> target, double scale, std::string key)
      : target_(std::move(target)), scale_(scale), key_(std::move(key)) {}

  std::string describe() const override {
    return fmt::format("gmm_target: -{} * ||x - [{}]||^2", scale_, fmt::join(target_, ", "));
  }

  torch::Tensor score(const torch::Tensor& x, const data::Condition&) override {
    DUALIGN_CHECK(x.dim() == 2 && x.size(1) == static_cast<int64_t>(target_.size()),
                  "reward '{}': target has {} coordinates, samples are shaped [{}]", key_, target_.size(),
                  fmt::join(x.sizes(), ", "));
    auto target = torch::tensor(target_, torch::kDouble).to(x.device());
    return (-scale_ * (x.to(torch::kDouble) - target).pow(2).sum(1)).to(torch::kFloat);
  }

 private:
  std::vector<double> target_;
  double scale_;
  std::string key_;
};

// r(x) = log Σ_{c ∈ classes} p(c | x) (output log_prob) or Σ p(c | x) (output prob). Differentiable in x (inside
// [-1, 1], where the input clamp passes gradients) when x requires grad.
class ClassifierReward : public Reward {
 public:
  ClassifierReward(std::string path, std::vector<int64_t> classes, bool log_prob, const torch::Device& device)
      : path_(std::move(path)), classes_(std::move(classes)), log_prob_(log_prob), device_(device) {
    auto loaded = load_classifier(path_, device);
    model_ = loaded.model;
    for (auto& p : model_->parameters()) p.requires_grad_(false);  // a fixed scorer; gradients only reach x
    accuracy_ = loaded.test_accuracy;
    classes_index_ = torch::tensor(classes_, torch::kLong).to(device);
  }

  const ImageClassifier& model() const { return model_; }

  std::string describe() const override {
    return fmt::format("classifier {} (test accuracy {:.4f}): {} p(c in [{}] | x)", path_, accuracy_,
                       log_prob_ ? "log" : "", fmt::join(classes_, ", "));
  }

  torch::Tensor score(const torch::Tensor& x, const data::Condition&) override {
    // Differentiable in x when x requires grad (reward back-propagation, method=constrained); else no graph.
    torch::AutoGradMode grad_mode(torch::GradMode::is_enabled() && x.requires_grad());
    std::vector<torch::Tensor> parts;
    for (int64_t start = 0; start < x.size(0); start += kChunk) {
      // Samplers may step slightly outside the data range; the classifier was trained on [-1, 1].
      auto xb = x.slice(0, start, std::min(start + kChunk, x.size(0))).to(device_, torch::kFloat).clamp(-1, 1);
      auto logp = torch::log_softmax(model_->forward(xb), 1).index_select(1, classes_index_);
      auto r = torch::logsumexp(logp, 1);
      parts.push_back(log_prob_ ? r : r.exp());
    }
    if (parts.empty()) return torch::zeros({0}, torch::TensorOptions().device(x.device()));
    return torch::cat(parts).to(x.device(), torch::kFloat);
  }

 private:
  static constexpr int64_t kChunk = 1024;
  std::string path_;
  std::vector<int64_t> classes_;
  bool log_prob_;
  torch::Device device_;
  ImageClassifier model_{nullptr};
  double accuracy_ = -1;
  torch::Tensor classes_index_;
};

// r̃ = (r − mean) / (std + 1e-8): the reference code's z-scoring by pretrained-model statistics.
class StandardizedReward : public Reward {
 public:
  StandardizedReward(std::unique_ptr<Reward> inner, double mean, double std)
      : inner_(std::move(inner)), mean_(mean), std_(std) {}
  std::string describe() const override {
    return fmt::format("({} - {:.6g}) / {:.6g}", inner_->describe(), mean_, std_);
  }
  torch::Tensor score(const torch::Tensor& x, const data::Condition& cond) override {
    return (inner_->score(x, cond) - mean_) / (std_ + 1e-8);
  }

 private:
  std::unique_ptr<Reward> inner_;
  double mean_, std_;
};

// zscore: {mean: M, std: S} or {stats: FILE} with FILE a JSON object {"mean": M, "std": S}.
std::pair<double, double> read_zscore(const config::Section& z) {
  double mean = 0, std = 1;
  if (z.has("stats")) {
    const auto file = z.get<std::string>("stats");
    std::ifstream in(file);
    DUALIGN_CHECK(in.good(), "config key '{}': cannot open '{}'", z.path("stats"), file);
    try {
      auto j = nlohmann::json::parse(in);
      mean = j.at("mean").get<double>();
      std = j.at("std").get<double>();
    } catch (const nlohmann::json::exception& e) {
      fail("config key '{}': {} is not a JSON object with numbers mean and std ({})", z.path("stats"), file, e.what());
    }
  } else {
    mean = z.get<double>("mean");
    std = z.get<double>("std");
  }
  z.finish();
  DUALIGN_CHECK(std > 0, "config key '{}': std must be positive, got {}", z.prefix(), std);
  return {mean, std};
}

std::unique_ptr<Reward> make_base_reward(const config::Section& reward, const torch::Device& device);

}  // namespace

std::unique_ptr<Reward> make_reward(const config::Section& reward, const torch::Device& device) {
  std::optional<config::Section> latents, zscore;  // read first: the kinds' finish() must see them as known
  if (reward.has("latents")) latents = reward.section("latents");
  if (reward.has("zscore")) zscore = reward.section("zscore");
  auto r = make_base_reward(reward, device);
  if (latents) r = on_decoded_latents(std::move(r), *latents, device);
  if (zscore) {
    auto [mean, std] = read_zscore(*zscore);
    r = std::make_unique<StandardizedReward>(std::move(r), mean, std);
  }
  return r;
}

namespace {

std::unique_ptr<Reward> make_base_reward(const config::Section& reward, const torch::Device& device) {
  const auto kind = reward.get<std::string>("kind");
  if (is_clip_reward(kind)) return make_clip_reward(reward, device);
  if (is_image_statistic(kind)) {
    auto r = make_image_statistic(reward);
    reward.finish();
    return r;
  }
  if (kind == "gmm_target") {
    auto target = reward.get<std::vector<double>>("target");
    const double scale = reward.get<double>("scale", 1.0);
    reward.finish();
    DUALIGN_CHECK(!target.empty(), "config key '{}': the target needs at least one coordinate", reward.path("target"));
    DUALIGN_CHECK(scale > 0, "config key '{}': expected a positive scale, got {}", reward.path("scale"), scale);
    return std::make_unique<GmmTargetReward>(std::move(target), scale, reward.path("target"));
  }
  if (kind == "classifier") {
    const auto path = reward.get<std::string>("checkpoint");
    auto classes = reward.get<std::vector<int64_t>>("classes");
    const auto output = reward.get<std::string>("output", "log_prob");
    reward.finish();
    DUALIGN_CHECK(output == "log_prob" || output == "prob", "config key '{}': expected log_prob or prob, got '{}'",
                  reward.path("output"), output);
    DUALIGN_CHECK(!classes.empty(), "config key '{}': list at least one class id", reward.path("classes"));
    std::unique_ptr<ClassifierReward> r;
    try {
      r = std::make_unique<ClassifierReward>(path, classes, output == "log_prob", device);
    } catch (const Error& e) {
      fail("config key '{}': {}", reward.path("checkpoint"), e.what());
    }
    const int64_t num_classes = r->model()->config().num_classes;
    for (int64_t c : classes)
      DUALIGN_CHECK(c >= 0 && c < num_classes, "config key '{}': class {} is out of range for the {}-class classifier {}",
                    reward.path("classes"), c, num_classes, path);
    return r;
  }
  fail("config key '{}': unknown reward kind '{}' (expected gmm_target, classifier, pickscore, clip_score, hpsv2, "
       "aesthetic, brightness, global_contrast, local_contrast, saturation or colorfulness)", reward.path("kind"), kind);
}

}  // namespace

}  // namespace dualign::rewards
