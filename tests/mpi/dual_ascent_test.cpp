// Dual variables: projections against closed forms, and dual ascent under mpirun (any world size gives the
// update a single process computes from the global mean of the constraint samples).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <numeric>

#include "dist/comm.h"
#include "dist/runtime.h"
#include "dual/dual_ascent.h"
#include "dual/projection.h"

using namespace dualign;

namespace {
dist::Comm& comm() {
  static auto c = dist::make_comm(dist::world(), torch::kCPU);
  return *c;
}
}  // namespace

TEST(DualProjection, SimplexMatchesClosedForms) {
  auto p = dual::project_simplex({0.5, 0.5});  // already on the simplex
  EXPECT_DOUBLE_EQ(p[0], 0.5);
  p = dual::project_simplex({1.0, 1.0, 1.0});  // shift by 2/3 each
  for (double v : p) EXPECT_NEAR(v, 1.0 / 3, 1e-15);
  p = dual::project_simplex({2.0, 0.0, -1.0});  // a vertex
  EXPECT_DOUBLE_EQ(p[0], 1.0);
  EXPECT_DOUBLE_EQ(p[1], 0.0);
  EXPECT_DOUBLE_EQ(p[2], 0.0);
  p = dual::project_simplex({0.6, 0.5, -0.3});  // τ = 0.05 on the first two
  EXPECT_NEAR(p[0], 0.55, 1e-15);
  EXPECT_NEAR(p[1], 0.45, 1e-15);
  EXPECT_EQ(p[2], 0.0);
}

TEST(DualProjection, SimplexIsTheNearestPointAmongRandomFeasibleOnes) {
  torch::manual_seed(0);
  for (int trial = 0; trial < 20; ++trial) {
    auto v = torch::randn({4}, torch::kFloat64) * 2;
    std::vector<double> x(v.data_ptr<double>(), v.data_ptr<double>() + 4);
    auto p = dual::project_simplex(x);
    EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1.0, 1e-12);
    auto dist2 = [&](const std::vector<double>& q) {
      double d = 0;
      for (size_t i = 0; i < q.size(); ++i) d += (q[i] - x[i]) * (q[i] - x[i]);
      return d;
    };
    for (int k = 0; k < 200; ++k) {  // random points of the simplex are never closer
      auto e = -torch::rand({4}, torch::kFloat64).log();
      e = e / e.sum();
      std::vector<double> q(e.data_ptr<double>(), e.data_ptr<double>() + 4);
      EXPECT_GE(dist2(q) + 1e-12, dist2(p));
    }
  }
}

TEST(DualProjection, NonnegAndSumZeroClip) {
  auto p = dual::ascend("nonneg", {0.2, 0.1}, {0.3, -0.5});
  EXPECT_DOUBLE_EQ(p[0], 0.5);
  EXPECT_DOUBLE_EQ(p[1], 0.0);
  p = dual::ascend("sumzero_clip", {0.5, 0.5}, {0.3, 0.1});  // step − mean = (+0.1, −0.1)
  EXPECT_NEAR(p[0], 0.6, 1e-15);
  EXPECT_NEAR(p[1], 0.4, 1e-15);
  EXPECT_THROW(dual::ascend("box", {0.0}, {0.0}), std::exception);
}

TEST(DualAscent, GlobalMeanWarmupEmaAndSameOnEveryRank) {
  const int r = comm().rank(), n = comm().size();
  dual::DualSettings s;
  s.projection = "nonneg";
  s.init = {0.2, 0.2};
  s.lr = 0.5;
  s.warmup_updates = 2;
  s.slack_ema = 0.5;
  s.every = 2;
  dual::DualAscent duals({"a", "b"}, s);
  // Each rank adds different samples; the global means are 1 + (n−1)/2 for "a" and −3 for "b".
  duals.add(0, 1.0 + r, 1);
  duals.add(1, -3.0, 1);
  EXPECT_TRUE(duals.end_step(1, comm()).empty());  // not due: no communication
  auto log = duals.end_step(2, comm());
  const double mean_a = 1.0 + (n - 1) / 2.0;
  EXPECT_DOUBLE_EQ(log.at("dual/a/value"), mean_a);
  EXPECT_DOUBLE_EQ(log.at("dual/a/lambda"), 0.2 + 0.25 * mean_a);  // warm-up: lr/2 on the first update
  EXPECT_DOUBLE_EQ(log.at("dual/b/lambda"), 0.0);                   // projected
  duals.add(0, 0.0, 1);
  duals.add(1, 1.0, 1);
  log = duals.end_step(4, comm());
  EXPECT_DOUBLE_EQ(log.at("dual/a/ema"), 0.5 * mean_a);  // EMA of the values
  EXPECT_DOUBLE_EQ(log.at("dual/a/lambda"), 0.2 + 0.25 * mean_a + 0.5 * 0.5 * mean_a);
  EXPECT_DOUBLE_EQ(log.at("dual/b/lambda"), 0.0);  // EMA −1 keeps it at the bound
  // identical on every rank, bit for bit
  auto lam = torch::tensor(duals.lambda(), torch::kFloat64);
  auto max = lam.clone(), min = lam.clone();
  comm().all_reduce(max, dist::ReduceOp::max);
  comm().all_reduce(min, dist::ReduceOp::min);
  EXPECT_TRUE(torch::equal(max, min));
  EXPECT_EQ(duals.updates(), 2);
}

TEST(DualAscent, StateRestoresInPlace) {
  dual::DualSettings s;
  s.init = {1.0};
  dual::DualAscent a({"c"}, s), b({"c"}, s);
  a.add(0, 2.0, 1);
  a.end_step(1, comm());
  for (auto& [name, t] : b.state()) t.copy_(a.state().at(name));
  EXPECT_EQ(b.lambda(), a.lambda());
  EXPECT_EQ(b.updates(), 1);
}

TEST(DualAscent, MissingSamplesAreAClearError) {
  dual::DualSettings s;
  s.init = {0.0, 0.0};
  dual::DualAscent duals({"x", "y"}, s);
  duals.add(0, 1.0, 1);
  try {
    duals.end_step(1, comm());
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("'y'"), std::string::npos) << e.what();
  }
}

// νPI: λ_k = Π(λ_{k−1} + η ĝ_k + κ_p (ξ_k − ξ_{k−1})), ξ_k = ν ξ_{k−1} + (1 − ν) ĝ_k, ξ_0 = 0; kp = 0 is plain ascent;
// ξ is checkpointed (and only with this controller, so ascent checkpoints keep their keys).
TEST(DualAscent, NuPiControllerAddsTheDampedProportionalTerm) {
  const int r = comm().rank(), n = comm().size();
  dual::DualSettings s;
  s.init = {1.0};
  s.lr = 0.1;
  s.controller = "nupi";
  s.kp = 2.0;
  s.nu = 0.5;
  dual::DualAscent pi({"c"}, s);
  s.controller = "ascent";
  dual::DualAscent plain({"c"}, s);
  const std::vector<double> slacks{1.0, 1.0, -2.0};  // global means (every rank adds r + g − r̄)
  double lambda = 1.0, xi = 0.0, plain_lambda = 1.0;
  for (size_t k = 0; k < slacks.size(); ++k) {
    const double g = slacks[k];
    pi.add(0, g + r - (n - 1) / 2.0, 1);
    plain.add(0, g, 1);
    pi.end_step(static_cast<int64_t>(k + 1), comm());
    plain.end_step(static_cast<int64_t>(k + 1), comm());
    const double xi_next = 0.5 * xi + 0.5 * g;
    lambda = std::max(0.0, lambda + 0.1 * g + 2.0 * (xi_next - xi));
    xi = xi_next;
    plain_lambda = std::max(0.0, plain_lambda + 0.1 * g);
    EXPECT_NEAR(pi.lambda()[0], lambda, 1e-12) << "update " << k + 1;
    EXPECT_NEAR(plain.lambda()[0], plain_lambda, 1e-12);
  }
  // After the slack turns negative the proportional term pulls λ down at once, ascent only by η ĝ.
  EXPECT_LT(pi.lambda()[0], plain.lambda()[0]);
  EXPECT_EQ(pi.state().count("pi_xi"), 1u);
  EXPECT_EQ(plain.state().count("pi_xi"), 0u);
  EXPECT_DOUBLE_EQ(pi.state().at("pi_xi").item<double>(), xi);
}
