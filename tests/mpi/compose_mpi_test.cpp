// compose under mpirun: every rank samples its share of each round, the KL sums are all-reduced inside
// DualAscent (and the DSM gradients in primal mode), so λ must be identical on every rank and equal to the
// single-process trajectory (the same loop on a one-process communicator over all the samples).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <yaml-cpp/yaml.h>

#include "compose/components.h"
#include "compose/composer.h"
#include "common/self_comm.h"
#include "config/config.h"
#include "dist/comm.h"
#include "dist/runtime.h"
#include "models/score_model.h"

using namespace dualign;
using namespace dualign::compose;

namespace {

dist::Comm& world_comm() {
  static auto c = dist::make_comm(dist::world(), torch::kCPU);
  return *c;
}

const diffusion::NoiseSchedule& schedule() {
  static diffusion::NoiseSchedule s;
  return s;
}

std::vector<Component> components() {
  return {{"q1", gmm_eps(data::Gmm({{-2.0, 0.0}, {2.0, 0.0}, {0.0, 2.0}}, {0.4, 0.3, 0.3}, 0.35), schedule())},
          {"q2", gmm_eps(data::Gmm({{-2.0, 0.0}, {2.0, 0.0}}, {0.5, 0.5}, 0.8), schedule())},
          {"q3", gmm_eps(data::Gmm({{0.0, 1.0}}, {1.0}, 1.0), schedule())}};
}

ComposeSettings settings(const std::string& mode) {
  ComposeSettings s;
  s.mode = mode;
  s.rounds = mode == "dual" ? 4 : 2;
  s.n = 128;
  s.strata = 5;
  s.sampler.num_inference_steps = 10;
  s.dual.projection = "simplex";
  s.dual.init = {1.0 / 3, 1.0 / 3, 1.0 / 3};
  s.dual.lr = 0.3;
  s.seed = 5;
  s.langevin = {8, 2, 0.02, 1.0};
  s.mcmc_n = 128;
  s.distill_steps = 10;
  s.distill_batch = 64;
  return s;
}

std::shared_ptr<models::ScoreModel> student() {
  config::Composed composed;
  composed.config = composed.resolved = YAML::Load("model: {kind: mlp, data_dim: 2, hidden: 32, depth: 2}");
  config::Config cfg(std::move(composed));
  torch::manual_seed(3);  // the same initial weights on every rank
  return models::build_score_model(cfg.section("model"), torch::kCPU);
}

void expect_same_trajectory(const std::string& mode) {
  auto& comm = world_comm();
  std::vector<double> mine, reference;
  {
    Composer distributed(components(), schedule(), {2}, settings(mode), comm, torch::kCPU,
                         mode == "primal" ? student() : nullptr);
    distributed.run();
    for (const auto& r : distributed.history()) mine.insert(mine.end(), r.lambda_next.begin(), r.lambda_next.end());
  }
  test::SelfComm self;
  Composer single(components(), schedule(), {2}, settings(mode), self, torch::kCPU, mode == "primal" ? student() : nullptr);
  single.run();
  for (const auto& r : single.history()) reference.insert(reference.end(), r.lambda_next.begin(), r.lambda_next.end());

  ASSERT_EQ(mine.size(), reference.size());
  for (size_t k = 0; k < mine.size(); ++k) EXPECT_NEAR(mine[k], reference[k], 1e-5) << "entry " << k;
  // Bit-identical across ranks: rank 0's trajectory broadcast and compared.
  auto t = torch::tensor(mine, torch::kFloat64);
  auto root = t.clone();
  comm.broadcast(root, 0);
  EXPECT_TRUE(torch::equal(t, root));
  // The weights moved (the test would be vacuous at the initial point).
  EXPECT_GT(std::abs(mine[mine.size() - 3] - 1.0 / 3), 0.01);
}

}  // namespace

TEST(ComposeMpi, DualOnlyTrajectoryMatchesSingleProcess) { expect_same_trajectory("dual"); }

TEST(ComposeMpi, PrimalDistillationTrajectoryMatchesSingleProcess) { expect_same_trajectory("primal"); }
