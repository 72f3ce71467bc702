// A class-conditional ScoreMLP (2-D points, 3 classes + the null label 3) with seeded random weights, built the way
// training builds it (from a `model` section).
#pragma once
#include <yaml-cpp/yaml.h>

#include <memory>

#include "config/config.h"
#include "models/score_model.h"

namespace dualign::test {

inline std::shared_ptr<models::ScoreModel> class_mlp() {
  config::Composed c;
  c.config = c.resolved = YAML::Load("model: {kind: mlp, data_dim: 2, hidden: 32, depth: 2, num_classes: 3}");
  config::Config cfg(std::move(c));
  torch::manual_seed(3);
  return models::build_score_model(cfg.section("model"), torch::kCPU);
}

}  // namespace dualign::test
