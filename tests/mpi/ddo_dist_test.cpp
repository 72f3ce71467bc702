// Sharded DDO against the single-process computation: every rank builds the same global data, keeps its shard
// (blocks of 7 rows, so shards are uneven), and compares the collective result with the one computed on the
// whole set without a communicator.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ddo/collective.h"
#include "ddo/dual_averaging.h"
#include "ddo/objective.h"
#include "ddo/potential.h"
#include "dist/comm.h"
#include "dist/runtime.h"

using namespace dualign;
using namespace dualign::ddo;

namespace {

constexpr int64_t kN = 90, kBlock = 7;

struct Fixture {
  std::unique_ptr<dist::Comm> comm = dist::make_comm(dist::world(), torch::kCPU);
  Shard shard = make_shard(kN, kBlock, comm->rank(), comm->size());
  torch::Tensor x, r, f;  // global
  Fixture() {
    torch::manual_seed(11);
    x = torch::rand({kN, 2}) * 4 - 2;
    r = -(x - torch::tensor({1.0f, 0.0f})).pow(2).sum(1).to(torch::kDouble);
    f = torch::randn({kN}, torch::kDouble) * 0.8;
  }
  torch::Tensor local(const torch::Tensor& t) const { return t.narrow(0, shard.begin, shard.count); }
};

}  // namespace

TEST(DdoDist, GatherAndTiltStatsMatchOneProcess) {
  Fixture fx;
  EXPECT_TRUE(torch::equal(gather_rows(fx.comm.get(), fx.shard, fx.local(fx.x)), fx.x));
  const auto want = tilt_stats(fx.f);
  const auto got = tilt_stats(fx.local(fx.f), fx.comm.get());
  EXPECT_NEAR(got.kl, want.kl, 1e-12);
  EXPECT_NEAR(got.ess, want.ess, 1e-9);
  EXPECT_NEAR(got.log_z, want.log_z, 1e-12);
  EXPECT_TRUE(torch::allclose(tilt_weights(fx.local(fx.f), fx.comm.get()), fx.local(tilt_weights(fx.f)), 1e-12, 1e-15));
}

TEST(DdoDist, ObjectivesMatchOneProcess) {
  Fixture fx;
  for (const std::string name : {"rlhf", "dpo", "kto"}) {
    ObjectiveOptions o;
    o.name = name;
    o.dpo_beta = 1.3;
    o.partners = 40;  // partners cross the shard boundaries
    o.kto_beta = 0.9;
    auto whole = make_objective(o, fx.r);
    auto sharded = make_objective(o, fx.local(fx.r), fx.shard, fx.comm.get());
    EXPECT_NEAR(sharded->value(fx.local(fx.f)), whole->value(fx.f), 1e-12) << name;
    auto g = sharded->first_variation(fx.local(fx.f));
    EXPECT_TRUE(torch::allclose(g, fx.local(whole->first_variation(fx.f)), 1e-10, 1e-12)) << name;
  }
}

TEST(DdoDist, FitAndDaStepAreTheSameOnEveryRankAndMatchOneProcess) {
  Fixture fx;
  auto objective = make_dpo_objective(fx.local(fx.r), 1.0, 30, fx.shard, fx.comm.get());
  auto objective1 = make_dpo_objective(fx.r, 1.0, 30);
  DaOptions o;
  o.iterations = 2;
  o.fit = {150, 32, 5e-3, 3};  // mini-batches (32 < N): global indices split over ranks
  torch::manual_seed(5);
  Potential f(PotentialOptions{{2}, "mlp", 16, 2});
  torch::manual_seed(5);
  Potential f1(PotentialOptions{{2}, "mlp", 16, 2});
  auto recs = run_dual_averaging(f, fx.local(fx.x), fx.local(fx.r), *objective, o, {}, {}, fx.shard, fx.comm.get());
  auto want = run_dual_averaging(f1, fx.x, fx.r, *objective1, o);
  ASSERT_EQ(recs.size(), want.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_NEAR(recs[i].objective, want[i].objective, 1e-6 * std::abs(want[i].objective)) << "record " << i;
    EXPECT_NEAR(recs[i].kl, want[i].kl, 1e-5 * std::max(1.0, want[i].kl)) << "record " << i;
  }
  // Bitwise identical on every rank: rank 0's parameters broadcast and compared.
  for (auto& p : f->parameters()) {
    auto mine = p.detach().clone().contiguous();
    auto root = mine.clone();
    fx.comm->broadcast(root, 0);
    EXPECT_TRUE(torch::equal(mine, root));
  }
  torch::NoGradGuard no_grad;
  auto diff = (f->forward(fx.x) - f1->forward(fx.x)).abs().max().item<double>();
  EXPECT_LT(diff, 1e-4) << "potential of the sharded run vs one process";
}
