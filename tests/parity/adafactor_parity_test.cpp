// dualign's Adafactor (dist/adafactor.h) against transformers.optimization.Adafactor (fixtures from
// make_adafactor_fixtures.py): the same initial parameters and the same 20 gradients must give the same parameters
// after every step, within 1e-6 relative (per tensor, L2), for the Diffusion-DPO SDXL recipe's settings, with weight
// decay and a first moment, and with scale_parameter. The state also round-trips through the checkpoint form.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "dist/adafactor.h"
#include "models/safetensors.h"
#include "parity_util.h"

using namespace dualign;

namespace {

struct Fixture {
  dist::AdafactorConfig config;
  std::vector<std::string> names;
  int steps = 0;
  models::TensorMap tensors;
};

Fixture load(const std::string& name) {
  Fixture f;
  std::ifstream in(parity_dir() + "/adafactor_" + name + ".json");
  EXPECT_TRUE(in) << "missing fixture " << name;
  auto j = nlohmann::json::parse(in);
  f.config.lr = j.at("lr");
  f.config.weight_decay = j.at("weight_decay");
  f.config.clip_threshold = j.at("clip_threshold");
  f.config.decay_rate = j.at("decay_rate");
  f.config.eps1 = j.at("eps")[0];
  f.config.eps2 = j.at("eps")[1];
  f.config.beta1 = j.at("beta1").is_null() ? 0.0 : j.at("beta1").get<double>();
  f.config.scale_parameter = j.at("scale_parameter");
  f.config.relative_step = j.at("relative_step");
  f.names = j.at("names").get<std::vector<std::string>>();
  f.steps = j.at("steps");
  f.tensors = models::load_safetensors(parity_dir() + "/adafactor_" + name + ".safetensors");
  return f;
}

double relative(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kFloat64) - b.to(torch::kFloat64)).norm() / b.to(torch::kFloat64).norm()).item<double>();
}

class AdafactorParity : public testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(AdafactorParity, TwentyStepsMatchTransformers) {
  at::set_num_threads(1);
  const auto f = load(GetParam());
  std::vector<torch::Tensor> params;
  for (const auto& n : f.names) params.push_back(f.tensors.at("init." + n).clone());
  dist::Adafactor opt(params, f.config);
  double worst = 0, moved = 0;
  for (int step = 0; step < f.steps; ++step) {
    for (size_t i = 0; i < params.size(); ++i)
      params[i].mutable_grad() = f.tensors.at("grad." + std::to_string(step) + "." + f.names[i]).clone();
    opt.step();
    for (size_t i = 0; i < params.size(); ++i) {
      const auto& expected = f.tensors.at("param." + std::to_string(step) + "." + f.names[i]);
      const double rel = relative(params[i], expected);
      worst = std::max(worst, rel);
      EXPECT_LE(rel, 1e-6) << GetParam() << ": " << f.names[i] << " after step " << step + 1;
    }
  }
  for (size_t i = 0; i < params.size(); ++i)
    moved = std::max(moved, relative(params[i], f.tensors.at("init." + f.names[i])) );
  std::printf("[adafactor parity] %s: %d steps, worst relative difference %.3g (parameters moved up to %.3g)\n",
              GetParam().c_str(), f.steps, worst, moved);
  EXPECT_GT(moved, 1e-2) << "the optimizer barely moved the parameters: the comparison would prove little";
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_EQ(opt.state(i).step, f.steps) << f.names[i];
}

INSTANTIATE_TEST_SUITE_P(Cases, AdafactorParity, testing::Values("official", "decay_beta1", "scale_parameter"));
