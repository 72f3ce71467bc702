#include "compose/components.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>

#include "ckpt/checkpoint.h"
#include "util/error.h"

namespace dualign::compose {

EpsFn model_eps(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule) {
  return [&model, &schedule](const torch::Tensor& x, const torch::Tensor& t) {
    return schedule.predict_eps(x, model.forward(x, t, {}), t);
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
