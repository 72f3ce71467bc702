// Collectives of the MPI backend against values every rank can compute by itself.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/comm.h"
#include "dist/stats.h"

using namespace dualign::dist;

namespace {
Comm& comm() {
  static auto c = make_comm(world(), torch::kCPU);
  return *c;
}
}  // namespace

TEST(DistComm, AllReduceSumAvgMaxMin) {
  const int r = comm().rank(), n = comm().size();
  auto t = torch::full({5}, double(r + 1), torch::kFloat64);
  comm().all_reduce(t, ReduceOp::sum);
  EXPECT_TRUE(torch::allclose(t, torch::full({5}, n * (n + 1) / 2.0, torch::kFloat64)));
  auto a = torch::full({3}, float(r), torch::kFloat32);
  comm().all_reduce(a, ReduceOp::avg);
  EXPECT_NEAR(a[0].item<float>(), (n - 1) / 2.0, 1e-6);
  EXPECT_EQ(comm().all_reduce_int64(r, ReduceOp::max), n - 1);
  EXPECT_EQ(comm().all_reduce_int64(r + 10, ReduceOp::min), 10);
}

TEST(DistComm, BFloat16IsStagedThroughFloat) {
  auto t = torch::full({7}, 1.5, torch::kBFloat16);
  comm().all_reduce(t, ReduceOp::sum);
  EXPECT_EQ(t.scalar_type(), torch::kBFloat16);
  EXPECT_FLOAT_EQ(t[6].item<float>(), 1.5f * comm().size());
}

TEST(DistComm, BroadcastFromLastRank) {
  const int root = comm().size() - 1;
  auto t = torch::arange(6, torch::kFloat32) * (comm().rank() + 1);
  comm().broadcast(t, root);
  EXPECT_TRUE(torch::equal(t, torch::arange(6, torch::kFloat32) * (root + 1)));
  EXPECT_EQ(comm().broadcast_int64(comm().rank() == 0 ? 42 : -1, 0), 42);
}

TEST(DistComm, AllGatherAndReduceScatterAreInverseLayouts) {
  const int r = comm().rank(), n = comm().size();
  auto in = torch::full({4}, float(r), torch::kFloat32);
  auto out = torch::empty({4 * n}, torch::kFloat32);
  comm().all_gather(out, in);
  for (int k = 0; k < n; ++k) EXPECT_EQ(out[4 * k].item<float>(), float(k));
  // reduce_scatter: every rank sends arange; rank r receives n * its slice.
  auto full = torch::arange(3 * n, torch::kFloat32);
  auto mine = torch::empty({3}, torch::kFloat32);
  comm().reduce_scatter(mine, full, ReduceOp::sum);
  EXPECT_TRUE(torch::allclose(mine, torch::arange(3 * r, 3 * r + 3, torch::kFloat32) * n));
  comm().reduce_scatter(mine, full, ReduceOp::avg);
  EXPECT_TRUE(torch::allclose(mine, torch::arange(3 * r, 3 * r + 3, torch::kFloat32)));
}

// Uneven segments (rank r gets r + 1 elements, the last rank none when n > 1) in float32 and bfloat16: rank r
// receives the reduction of its own segment of every rank's input.
TEST(DistComm, ReduceScatterVGivesEachRankItsUnevenSegment) {
  const int r = comm().rank(), n = comm().size();
  std::vector<int64_t> counts;
  for (int k = 0; k < n; ++k) counts.push_back(n > 1 && k == n - 1 ? 0 : k + 1);
  int64_t total = 0, begin = 0;
  for (int k = 0; k < n; ++k) {
    if (k == r) begin = total;
    total += counts[static_cast<size_t>(k)];
  }
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    auto in = (torch::arange(total, torch::kFloat32) + 10.0 * r).to(dtype);  // rank-dependent input
    auto mine = torch::empty({counts[static_cast<size_t>(r)]}, dtype);
    comm().reduce_scatter_v_async(mine, in, counts, ReduceOp::sum)->wait();
    // Σ_k (i + 10 k) = n i + 10 n(n−1)/2 over the segment's indices i
    auto expected = torch::arange(begin, begin + counts[static_cast<size_t>(r)], torch::kFloat32) * n + 5.0 * n * (n - 1);
    EXPECT_TRUE(torch::equal(mine.to(torch::kFloat32), expected)) << c10::toString(dtype) << " rank " << r;
    comm().reduce_scatter_v_async(mine, in, counts, ReduceOp::avg)->wait();
    EXPECT_TRUE(torch::allclose(mine.to(torch::kFloat32), expected / n, 1e-2)) << c10::toString(dtype);
  }
  // A count list that does not add up to the input is named.
  auto bad = torch::zeros({total + 1}, torch::kFloat32), out = torch::empty({counts[static_cast<size_t>(r)]});
  try {
    comm().reduce_scatter_v_async(out, bad, counts, ReduceOp::sum)->wait();
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("reduce_scatter_v"), std::string::npos) << e.what();
  }
}

TEST(DistComm, AsyncOpsCompleteInIssueOrder) {
  std::vector<torch::Tensor> ts;
  std::vector<std::unique_ptr<Work>> works;
  for (int i = 0; i < 8; ++i) {
    ts.push_back(torch::full({1000}, float(i), torch::kFloat32));
    works.push_back(comm().all_reduce_async(ts.back(), ReduceOp::sum));
  }
  for (int i = 7; i >= 0; --i) {
    works[i]->wait();
    EXPECT_EQ(ts[i][999].item<float>(), float(i * comm().size()));
  }
}

TEST(DistComm, WrongShapesAreNamed) {
  auto in = torch::zeros({3}, torch::kFloat32);
  auto out = torch::zeros({3 * comm().size() + 1}, torch::kFloat32);
  try {
    comm().all_gather(out, in);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("all_gather"), std::string::npos) << e.what();
  }
  auto strided = torch::zeros({4, 4}).t();
  EXPECT_THROW(comm().all_reduce(strided), std::exception);
}

TEST(DistStats, SumsAndRatiosAreGlobal) {
  const int r = comm().rank(), n = comm().size();
  StatsReducer stats;
  stats.add("reward_sum", 2.0 * (r + 1));
  stats.add("count", r + 1);
  stats.add("reward_sum", 1.0);  // accumulates into the same slot
  auto reduced = stats.reduce(comm());
  ASSERT_EQ(reduced.size(), 2u);
  EXPECT_DOUBLE_EQ(StatsReducer::get(reduced, "count"), n * (n + 1) / 2.0);
  EXPECT_DOUBLE_EQ(StatsReducer::get(reduced, "reward_sum"), n * (n + 1) + n);
  EXPECT_TRUE(stats.empty());
}
