// The reward kinds of make_reward: gmm_target (analytic, 2-D toys) and classifier (a trained CNN's class
// probabilities, images).
#include "rewards/reward.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "config/config.h"
#include "rewards/classifier.h"
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

}  // namespace

std::unique_ptr<Reward> make_reward(const config::Section& reward, const torch::Device& device) {
  const auto kind = reward.get<std::string>("kind");
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
  fail("config key '{}': unknown reward kind '{}' (expected gmm_target or classifier)", reward.path("kind"), kind);
}

}  // namespace dualign::rewards
