// DistributedOptimizer with train.optimizer=adafactor in a world of one process (DDP and ZeRO-1/2): a run saved after
// k steps and resumed into a fresh optimizer is bitwise the uninterrupted run, the update is dist::Adafactor's on the
// clipped gradient, and what the optimizer keeps between steps is what `dualign plan` budgets for Adafactor.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/self_comm.h"
#include "dist/adafactor.h"
#include "dist/device_memory.h"
#include "dist/memory_plan.h"
#include "train/optimizer.h"
#include "train/settings.h"

using namespace dualign;
using namespace dualign::train;

namespace {

TrainSettings settings(int stage, double beta1) {
  TrainSettings s;
  s.optimizer = "adafactor";
  s.lr = 1e-2;
  s.weight_decay = 0.01;
  s.grad_clip = 1.0;
  s.zero_stage = stage;
  s.adafactor.beta1 = beta1;
  return s;
}

// A Linear (2-D, factored), a conv (4-D, factored) and their biases (1-D).
struct NetImpl : torch::nn::Module {
  NetImpl() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, 3).padding(1)));
    fc = register_module("fc", torch::nn::Linear(3 * 4 * 4, 5));
  }
  torch::Tensor forward(const torch::Tensor& x) { return fc(torch::tanh(conv(x)).flatten(1)); }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(Net);

Net net() {
  torch::manual_seed(0);
  return Net();
}

torch::Tensor loss_of(Net& m, int64_t seed) {
  torch::manual_seed(100 + seed);
  auto x = torch::randn({8, 2, 4, 4}), y = torch::randn({8, 5});
  return (m->forward(x) - y).pow(2).mean();
}

void train_steps(Net& m, DistributedOptimizer& o, int from, int to) {
  for (int step = from; step < to; ++step) {
    o.zero_grad();
    o.backward(loss_of(m, step));
    ASSERT_TRUE(o.step(1e-2 * (1 + step % 3)).applied);  // a changing lr, as a schedule gives
  }
}

std::map<std::string, torch::Tensor> deep_copy(const std::map<std::string, torch::Tensor>& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, v] : m) out[k] = v.clone();
  return out;
}

struct Case {
  int stage;
  double beta1;
};

class AdafactorOptimizer : public testing::TestWithParam<Case> {};

}  // namespace

TEST_P(AdafactorOptimizer, ResumeIsBitwiseExact) {
  const auto [stage, beta1] = GetParam();
  constexpr int kSaveAt = 3, kSteps = 7;
  test::SelfComm comm;
  auto straight = net();
  DistributedOptimizer a(comm, straight->parameters(), settings(stage, beta1));
  train_steps(straight, a, 0, kSteps);

  auto first = net();
  std::map<std::string, torch::Tensor> weights, state;
  {
    DistributedOptimizer b(comm, first->parameters(), settings(stage, beta1));
    train_steps(first, b, 0, kSaveAt);
    for (const auto& p : first->named_parameters()) weights[p.key()] = p.value().detach().clone();
    state = deep_copy(b.sharded() ? b.shard_state() : b.state(*first));
  }
  auto resumed = net();  // fresh weights, overwritten from the "checkpoint"
  DistributedOptimizer c(comm, resumed->parameters(), settings(stage, beta1));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : resumed->named_parameters()) p.value().copy_(weights.at(p.key()));
  }
  if (c.sharded())
    c.load_shard_state(state, "test");
  else
    c.load_state(*resumed, state, "test");
  train_steps(resumed, c, kSaveAt, kSteps);

  auto pa = straight->named_parameters(), pc = resumed->named_parameters();
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pc[p.key()])) << p.key();
  auto moved = net();
  EXPECT_FALSE(torch::equal(moved->fc->weight, straight->fc->weight));
  // A state missing a tensor is an error naming it.
  state.erase(state.begin());  // a statistic ("0.exp_avg..." or "conv.bias.exp_avg...")
  auto fresh = net();
  DistributedOptimizer d(comm, fresh->parameters(), settings(stage, beta1));
  EXPECT_THROW(d.sharded() ? d.load_shard_state(state, "test") : d.load_state(*fresh, state, "test"), std::exception);
}

// DistributedOptimizer's step is dist::Adafactor's on the gradient clipped to train.grad_clip.
TEST_P(AdafactorOptimizer, StepIsAdafactorOnTheClippedGradient) {
  const auto [stage, beta1] = GetParam();
  test::SelfComm comm;
  auto m = net(), ref = net();
  auto s = settings(stage, beta1);
  s.grad_clip = 0.05;  // small enough to clip
  DistributedOptimizer o(comm, m->parameters(), s);
  dist::AdafactorConfig c;
  c.lr = s.lr;
  c.weight_decay = s.weight_decay;
  c.beta1 = beta1;
  dist::Adafactor plain(ref->parameters(), c);
  for (int step = 0; step < 4; ++step) {
    o.zero_grad();
    o.backward(loss_of(m, step));
    o.step(1e-2);
    for (auto& p : ref->parameters()) p.mutable_grad() = torch::Tensor();
    loss_of(ref, step).backward();
    torch::nn::utils::clip_grad_norm_(ref->parameters(), s.grad_clip);
    plain.step();
  }
  auto pm = m->parameters(), pr = ref->parameters();
  for (size_t i = 0; i < pm.size(); ++i) {
    const double rel = ((pm[i] - pr[i]).norm() / pr[i].norm()).item<double>();
    EXPECT_LE(rel, 1e-6) << "parameter " << i;
  }
}

// The optimizer's allocations between steps (weights, gradient buffers, Adafactor state) are plan's model states.
TEST_P(AdafactorOptimizer, ModelStatesMatchThePlan) {
  const auto [stage, beta1] = GetParam();
  dist::install_cpu_memory_meter();
  const c10::Device cpu(c10::DeviceType::CPU);
  const int64_t before = dist::current_device_memory(cpu);
  test::SelfComm comm;
  auto m = net();
  int64_t params = 0, state = 0;
  for (const auto& p : m->parameters()) {
    params += p.numel();
    state += dist::adafactor_state_numel(p.sizes(), beta1 > 0);
  }
  {
    DistributedOptimizer o(comm, m->parameters(), settings(stage, beta1));
    train_steps(m, o, 0, 2);
    const double measured = double(dist::current_device_memory(cpu) - before);
    dist::PlanInput in;
    in.model = {"test net", params, 0.0};
    in.zero_stage = stage;
    in.precision = dist::Precision::fp32;
    in.world_size = 1;
    in.optimizer = dist::Optimizer::adafactor;
    in.adafactor_state = state;
    const double planned = dist::plan_memory(in).model_states_gb() * 1e9;
    std::printf("adafactor stage %d beta1 %g: %lld parameters, %lld state elements, measured %.0f B, planned %.0f B\n",
                stage, beta1, static_cast<long long>(params), static_cast<long long>(state), measured, planned);
    EXPECT_NEAR(measured, planned, 64);
  }
}

INSTANTIATE_TEST_SUITE_P(Stages, AdafactorOptimizer,
                         testing::Values(Case{0, 0.0}, Case{0, 0.9}, Case{1, 0.0}, Case{2, 0.9}),
                         [](const testing::TestParamInfo<Case>& i) {
                           return "stage" + std::to_string(i.param.stage) + (i.param.beta1 > 0 ? "Beta1" : "");
                         });
