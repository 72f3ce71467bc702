// No host synchronisation inside a micro-step: the loss and backward of SFT and the preference methods (KTO's
// reference point included), and the statistics the trainer adds, make no .item(), no nonzero and no to_host()
// (counted by dist::HostSyncProbe). The statistics still hold the right numbers once they are brought to the host
// at a log step. (The dual methods read their slacks on the host, as their updates need them.)
#include <gtest/gtest.h>

#include <cmath>

#include "common/method_fixture.h"
#include "dist/host_sync.h"
#include "dist/stats.h"
#include "methods/method.h"

namespace dualign::methods {
namespace {

const char* kModelYaml = "model: {kind: mlp, data_dim: 2, hidden: 32, depth: 2}\n";

data::Batch batch_for(const std::string& method, int64_t n) {
  data::Batch b;
  b.x = torch::randn({n, 2}) + 1.0;
  if (method == "dpo" || method == "hinge" || method == "dmpo") b.x_l = torch::randn({n, 2}) - 1.0;
  if (method == "kto") b.desirable = (torch::arange(n) % 2).to(torch::kFloat32);
  b.global_size = n;
  b.seed = 11;
  return b;
}

class NoHostSync : public ::testing::TestWithParam<const char*> {};

TEST_P(NoHostSync, InLossBackwardAndStatistics) {
  const std::string name = GetParam();
  test::MethodFixture f(kModelYaml, "method: {name: " + name + (name == "sft" ? "" : ", beta: 500") + "}\n");
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
}

INSTANTIATE_TEST_SUITE_P(Methods, NoHostSync, ::testing::Values("sft", "dpo", "hinge", "dmpo", "kto"));

}  // namespace
}  // namespace dualign::methods
