// The host-sync probe sees what would stop the host on a GPU: .item() (aten::_local_scalar_dense, also inside
// backward), nonzero, and to_host() calls, each counted once; nothing after the probe is gone.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/host_sync.h"

namespace dualign::dist {
namespace {

TEST(HostSyncProbe, CountsItemNonzeroAndToHostOnce) {
  auto x = torch::arange(6, torch::kFloat32);
  HostSyncProbe probe;
  EXPECT_EQ(probe.count(), 0) << probe.describe();
  (void)x.sum().item<double>();
  (void)torch::nonzero(x > 2);
  auto values = to_host_doubles(x * 2);
  ASSERT_EQ(values.size(), 6u);
  EXPECT_DOUBLE_EQ(values[5], 10.0);
  auto ops = probe.by_op();
  EXPECT_EQ(ops["aten::_local_scalar_dense"], 1);
  EXPECT_EQ(ops["aten::nonzero"], 1);
  EXPECT_EQ(ops["to_host"], 1);
  EXPECT_EQ(probe.count(), 3) << probe.describe();
}

TEST(HostSyncProbe, SeesAnItemInsideBackward) {
  struct ItemInBackward : torch::autograd::Function<ItemInBackward> {
    static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& x) { return x * 2; }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                   torch::autograd::variable_list g) {
      const double scale = g[0].abs().max().item<double>();  // a host read, as a careless backward might do
      return {g[0] * 2 / scale * scale};
    }
  };
  auto x = torch::ones({4}, torch::requires_grad());
  HostSyncProbe probe;
  ItemInBackward::apply(x).sum().backward();
  EXPECT_EQ(probe.by_op()["aten::_local_scalar_dense"], 1) << probe.describe();
  EXPECT_NEAR(x.grad().sum().item<double>(), 8.0, 1e-6);
}

TEST(HostSyncProbe, CountsNothingAfterItIsGoneAndAddsNothingWithoutSyncs) {
  {
    HostSyncProbe first;
    (void)torch::ones({2}).sum().item<float>();
    EXPECT_EQ(first.count(), 1);
  }
  HostSyncProbe second;
  auto y = torch::randn({8, 8}, torch::requires_grad());
  (y.matmul(y).tanh().sum()).backward();
  EXPECT_EQ(second.count(), 0) << second.describe();
  EXPECT_EQ(second.describe(), "none");
}

}  // namespace
}  // namespace dualign::dist
