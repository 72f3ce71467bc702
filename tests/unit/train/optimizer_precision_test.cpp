// DistributedOptimizer under mixed precision, in a world of one process (DDP buckets and ZeRO-1/2 alike):
// the fp16 loss scale is exact, a non-finite loss or gradient skips the update without touching any state, and the
// model states it allocates are what `dualign plan` budgets.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "common/self_comm.h"
#include "dist/device_memory.h"
#include "dist/memory_plan.h"
#include "train/optimizer.h"
#include "train/settings.h"

using namespace dualign;
using namespace dualign::train;

namespace {

TrainSettings settings(int stage, const std::string& precision = "fp32") {
  TrainSettings s;
  s.lr = 1e-2;
  s.weight_decay = 0.01;
  s.grad_clip = 1.0;
  s.zero_stage = stage;
  s.precision = precision;
  return s;
}

torch::nn::Sequential net() {
  torch::manual_seed(0);
  return torch::nn::Sequential(torch::nn::Linear(8, 32), torch::nn::Tanh(), torch::nn::Linear(32, 4));
}

torch::Tensor loss_of(torch::nn::Sequential& m, int64_t seed) {
  torch::manual_seed(seed);
  auto x = torch::randn({16, 8}), y = torch::randn({16, 4});
  return (m->forward(x) - y).pow(2).mean();
}

void expect_same_parameters(torch::nn::Sequential& a, torch::nn::Sequential& b, const std::string& what) {
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << what << ": parameter " << i;
}

class OptimizerPrecision : public testing::TestWithParam<int> {};

}  // namespace

// Scaling by 2^16 and unscaling by 2^-16 are exact, so fp16's optimizer path updates exactly as fp32's does.
TEST_P(OptimizerPrecision, LossScaleIsExact) {
  test::SelfComm comm;
  auto plain = net(), scaled = net();
  DistributedOptimizer a(comm, plain->parameters(), settings(GetParam(), "fp32"));
  DistributedOptimizer b(comm, scaled->parameters(), settings(GetParam(), "fp16"));
  for (int step = 0; step < 3; ++step) {
    a.zero_grad();
    b.zero_grad();
    a.backward(loss_of(plain, step));
    b.backward(loss_of(scaled, step));
    const auto ra = a.step(1e-2), rb = b.step(1e-2);
    EXPECT_EQ(rb.loss_scale, 65536.0);
    EXPECT_TRUE(rb.applied);
    EXPECT_EQ(ra.grad_norm, rb.grad_norm);
  }
  expect_same_parameters(plain, scaled, "fp16 vs fp32 after 3 steps");
}

// A NaN loss on this rank: no parameter, moment or step count moves; the next step is the one a run without the bad
// step would have taken. fp16: the scale halves.
TEST_P(OptimizerPrecision, NonFiniteLossSkipsTheStepEverywhere) {
  for (const std::string precision : {"fp32", "fp16"}) {
    test::SelfComm comm;
    auto clean = net(), hit = net();
    DistributedOptimizer a(comm, clean->parameters(), settings(GetParam(), precision));
    DistributedOptimizer b(comm, hit->parameters(), settings(GetParam(), precision));
    b.zero_grad();
    b.backward(loss_of(hit, 0) * std::numeric_limits<double>::quiet_NaN());
    const auto skipped = b.step(1e-2);
    EXPECT_FALSE(skipped.applied) << precision;
    EXPECT_EQ(skipped.nonfinite_loss_ranks, 1) << precision;
    EXPECT_EQ(b.scaler().scale(), precision == "fp16" ? 32768.0 : 1.0);
    expect_same_parameters(clean, hit, precision + ": after the skipped step");
    for (auto* o : {&a, &b}) {
      o->zero_grad();
    }
    a.backward(loss_of(clean, 1));
    b.backward(loss_of(hit, 1));
    EXPECT_TRUE(a.step(1e-2).applied);
    EXPECT_TRUE(b.step(1e-2).applied);
    expect_same_parameters(clean, hit, precision + ": one good step after the skipped one");
  }
}

// A finite loss whose gradient overflows (what too large an fp16 scale does): skipped, with no rank blamed.
TEST_P(OptimizerPrecision, OverflowingGradientSkipsWithoutBlamingTheLoss) {
  test::SelfComm comm;
  auto m = net();
  auto before = net();
  DistributedOptimizer o(comm, m->parameters(), settings(GetParam(), "fp16"));
  o.zero_grad();
  auto loss = loss_of(m, 0).clone();
  loss.register_hook([](const torch::Tensor& g) { return g * std::numeric_limits<double>::infinity(); });
  o.backward(loss);
  const auto r = o.step(1e-2);
  EXPECT_FALSE(r.applied);
  EXPECT_EQ(r.nonfinite_loss_ranks, 0);
  EXPECT_FALSE(std::isfinite(r.grad_norm));
  expect_same_parameters(m, before, "after an overflow");
}

// What the optimizer keeps between steps (weights, gradient buffers, AdamW state) is what dualign plan's model
// states count for one rank, to the byte.
TEST_P(OptimizerPrecision, ModelStatesMatchThePlan) {
  dist::install_cpu_memory_meter();
  const c10::Device cpu(c10::DeviceType::CPU);
  for (const std::string reduce : {"fp32", "bf16"}) {
    const int64_t before = dist::current_device_memory(cpu);
    test::SelfComm comm;
    auto m = net();
    int64_t params = 0;
    for (const auto& p : m->parameters()) params += p.numel();
    auto s = settings(GetParam(), "bf16");
    s.reduce_dtype = reduce;
    DistributedOptimizer o(comm, m->parameters(), s);
    for (int step = 0; step < 2; ++step) {
      o.zero_grad();
      o.backward(loss_of(m, step));
      o.step(1e-2);
    }
    const double measured = double(dist::current_device_memory(cpu) - before);

    dist::PlanInput in;
    in.model = {"test net", params, 0.0};
    in.zero_stage = GetParam();
    in.precision = dist::Precision::fp32;  // the weight casts are a forward's, not the optimizer's
    in.world_size = 1;
    in.bf16_reduce = reduce == "bf16" && GetParam() == 0;  // ZeRO's bf16 copy lives only inside step()
    const auto plan = dist::plan_memory(in);
    const double planned = plan.model_states_gb() * 1e9;
    std::printf("stage %d, reduce %s: %lld parameters, optimizer-held bytes measured %.0f, planned %.0f\n", GetParam(),
                reduce.c_str(), static_cast<long long>(params), measured, planned);
    EXPECT_NEAR(measured, planned, 64) << "stage " << GetParam() << ", reduce " << reduce
                                                       << ": measured " << measured << " B, planned " << planned;
  }
}

INSTANTIATE_TEST_SUITE_P(ZeroStages, OptimizerPrecision, testing::Values(0, 1, 2),
                         [](const testing::TestParamInfo<int>& i) { return "stage" + std::to_string(i.param); });
