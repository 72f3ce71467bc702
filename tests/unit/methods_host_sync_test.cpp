// No host synchronisation inside a micro-step: the loss and backward of SFT and the preference methods (KTO's
// reference point included), and the statistics the trainer adds, make no .item(), no nonzero and no to_host()
// (counted by dist::HostSyncProbe). The statistics still hold the right numbers once they are brought to the host
// at a log step. The dual methods (constrained alignment, mixture) keep their constraint sums on the device too:
// they reach the host at the dual update.
#include <gtest/gtest.h>

#include <cmath>

#include "common/method_fixture.h"
#include "dist/host_sync.h"
#include "dist/stats.h"
#include "methods/method.h"

namespace dualign::methods {
namespace {

const char* kModelYaml = "model: {kind: mlp, data_dim: 2, hidden: 32, depth: 2}\n";
const char* kConstrainedYaml = R"(
method:
  name: constrained
  sampler: {kind: ddim, steps: 6, eta: 1.0}
  grad_steps: 2
  grad_steps_std: 1.0
  constraints:
    right: {reward: {kind: gmm_target, target: [2.5, 0.0]}, threshold: -1.0}
    top: {reward: {kind: gmm_target, target: [0.0, 2.5]}, threshold: -3.0}
  dual: {init: 0.5, lr: 0.01}
)";

const char* kMixtureYaml = R"(
method: {name: mixture, groups: 2, weighting: batch, baseline_decay: 0.5, estimate: elbo,
         dual: {projection: simplex, lr: 0.1, every: 1}}
)";

std::string method_yaml(const std::string& name) {
  if (name == "constrained") return kConstrainedYaml;
  if (name == "mixture") return kMixtureYaml;
  return "method: {name: " + name + (name == "sft" ? "" : ", beta: 500") + "}\n";
}

data::Batch batch_for(const std::string& method, int64_t n) {
  data::Batch b;
  b.x = method == "constrained" ? torch::empty({n, 0}) : torch::randn({n, 2}) + 1.0;  // constrained samples its own
  if (method == "dpo" || method == "hinge" || method == "dmpo") b.x_l = torch::randn({n, 2}) - 1.0;
  if (method == "kto") b.desirable = (torch::arange(n) % 2).to(torch::kFloat32);
  if (method == "mixture") b.group = torch::arange(n) % 2;
  b.global_size = n;
  b.seed = 11;
  return b;
}

class NoHostSync : public ::testing::TestWithParam<const char*> {};

TEST_P(NoHostSync, InLossBackwardAndStatistics) {
  const std::string name = GetParam();
  test::MethodFixture f(kModelYaml, method_yaml(name));
  auto method = f.method();
  const data::Batch batch = batch_for(name, 32);
  dist::StatsReducer stats;
  for (int micro = 0; micro < 2; ++micro) {  // the second micro-step sees warm caches: both must be clean
    dist::HostSyncProbe probe;
    LossOutput out = method->loss(*f.policy, batch);
    out.loss.backward();
    stats.add("loss_sum", out.loss.detach().to(torch::kFloat64) * static_cast<double>(batch.local_size()));
    for (const auto& [stat, value] : out.stats) stats.add(stat, value);
    EXPECT_EQ(probe.count(), 0) << name << ": " << probe.describe();
  }
  // At the log step the sums reach the host: two micro-steps of 32 samples, a finite mean loss.
  dist::HostSyncProbe at_log;
  auto reduced = stats.reduce(f.comm);
  EXPECT_GE(at_log.count(), 1);
  EXPECT_DOUBLE_EQ(dist::StatsReducer::get(reduced, "count"), 64.0);
  EXPECT_TRUE(std::isfinite(dist::StatsReducer::ratio(reduced, "loss_sum", "count")));
  if (name == "mixture") {  // the dual update reads the group shares the device kept: half the samples each
    auto logged = method->end_step(1, f.comm);
    EXPECT_DOUBLE_EQ(dist::StatsReducer::get(reduced, "group0_share_sum"), 32.0);
    EXPECT_TRUE(std::isfinite(logged.at("dual/group0/value")));
    EXPECT_NEAR(logged.at("dual/group0/lambda") + logged.at("dual/group1/lambda"), 1.0, 1e-12);
  }
  if (name == "constrained") {  // the dual update reads the window the device kept: the logged mean slack
    auto logged = method->end_step(1, f.comm);
    EXPECT_NEAR(logged.at("dual/right/value"), dist::StatsReducer::ratio(reduced, "right_slack_sum", "count"), 1e-12);
    EXPECT_NEAR(logged.at("dual/top/value"), dist::StatsReducer::ratio(reduced, "top_slack_sum", "count"), 1e-12);
    EXPECT_NE(logged.at("dual/right/value"), logged.at("dual/top/value"));
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, NoHostSync, ::testing::Values("sft", "dpo", "hinge", "dmpo", "kto", "constrained", "mixture"));

}  // namespace
}  // namespace dualign::methods
