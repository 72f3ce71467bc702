// Methods built from YAML strings the way the trainer builds them, in a world of one process: a policy from the
// `model` section (seed 7), a reference factory that rebuilds the same starting point, and SelfComm as the Comm.
// Shared by the unit tests of the preference, constrained and mixture methods.
#pragma once
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <memory>
#include <string>

#include "self_comm.h"
#include "config/config.h"
#include "methods/method.h"

namespace dualign::test {

inline config::Config config_from(const std::string& yaml) {
  config::Composed c;
  c.config = c.resolved = YAML::Load(yaml);
  return config::Config(std::move(c));
}

struct MethodFixture {
  diffusion::NoiseSchedule schedule{diffusion::ScheduleConfig{}};
  config::Config cfg;
  std::shared_ptr<models::ScoreModel> policy;
  SelfComm comm;

  // `model_yaml` holds the `model:` section, `method_yaml` the `method:` section.
  MethodFixture(const std::string& model_yaml, const std::string& method_yaml)
      : cfg(config_from(model_yaml + method_yaml)), policy(starting_point()) {}

  methods::MethodContext context() {
    return {schedule, torch::kCPU, [this] { return starting_point(); }, &comm, policy};
  }
  std::unique_ptr<methods::Method> method() { return methods::make_method(cfg.section("method"), context()); }

 private:
  std::shared_ptr<models::ScoreModel> starting_point() {
    torch::manual_seed(7);
    return models::build_score_model(cfg.section("model"), torch::kCPU);
  }
};

// The message of the error building the method throws, or "no error".
inline std::string method_error(const std::string& model_yaml, const std::string& method_yaml) {
  try {
    MethodFixture f(model_yaml, method_yaml);
    f.method();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

// The named additive statistic of a loss (e.g. "kl_sum"); a test failure when it is missing.
inline double stat(const methods::LossOutput& out, const std::string& name) {
  for (const auto& [k, v] : out.stats)
    if (k == name) return v.item<double>();
  ADD_FAILURE() << "no statistic " << name;
  return NAN;
}

}  // namespace dualign::test
