// Data-parallel training must be the same computation as single-process training on the global batch:
// 20 AdamW steps of an MLP and a small conv net, at any world size, in DDP mode (bucketed overlapped
// all-reduce) and ZeRO-1 mode, with and without gradient accumulation, must land on the parameters of a
// single-process reference computed here on the full global batch (relative difference <= 1e-5).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "dist/comm.h"
#include "dist/grad_sync.h"
#include "dist/zero.h"
#include "dist_nets.h"

using namespace dualign::dist;
using namespace dualign::dist::test;

namespace {

constexpr int kSteps = 20;
constexpr double kLr = 1e-2;

torch::optim::AdamWOptions adamw_options() { return torch::optim::AdamWOptions(kLr).weight_decay(1e-2); }

torch::Tensor train_reference(Net net, double clip) {
  auto model = make_net(net, 7);
  torch::optim::AdamW opt(model->parameters(), adamw_options());
  for (int s = 0; s < kSteps; ++s) {
    auto [x, y] = global_batch(net, s);
    opt.zero_grad();
    torch::mse_loss(model->forward(x), y).backward();
    if (clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), clip);
    opt.step();
  }
  return flat_params(*model);
}

struct Result {
  torch::Tensor params;
  size_t buckets = 0;
  size_t launched_during_backward = 0;  // DDP: buckets of the last step; ZeRO-2: reduce-scatters in all steps
  size_t launched_early = 0;            // ZeRO-2: buckets of the last backward sent before its last gradient
};

Result train_distributed(Net net, Mode mode, int accum, double clip) {
  const int n = comm().size(), r = comm().rank();
  const int micro = kGlobalBatch / (n * accum);
  // Other ranks start from different weights: the start-up broadcast must make them equal.
  auto model = make_net(net, 7 + 13 * r);
  auto params = model->parameters();
  std::unique_ptr<GradSync> sync;
  std::unique_ptr<torch::optim::AdamW> ddp_opt;
  std::unique_ptr<ZeroAdamW> zero;
  if (mode == Mode::ddp) {
    GradSyncOptions o;
    o.first_bucket_bytes = 256;  // tiny caps so these small nets still get several buckets
    o.bucket_cap_bytes = 2048;
    sync = std::make_unique<GradSync>(comm(), params, o);
    ddp_opt = std::make_unique<torch::optim::AdamW>(params, adamw_options());
  } else {
    ZeroOptions zo;
    zo.stage = mode == Mode::zero1 ? 1 : 2;
    zo.bucket_cap_bytes = 2048;  // several ZeRO-2 buckets, some straddling two ranks' slots
    zero = std::make_unique<ZeroAdamW>(comm(), params, AdamWConfig{kLr, 0.9, 0.999, 1e-8, 1e-2}, zo);
  }
  for (int s = 0; s < kSteps; ++s) {
    auto [x, y] = global_batch(net, s);
    for (int m = 0; m < accum; ++m) {
      const int64_t begin = static_cast<int64_t>(m * n + r) * micro;
      auto xs = x.narrow(0, begin, micro), ys = y.narrow(0, begin, micro);
      if (sync) sync->begin_micro_step(m == accum - 1);
      (torch::mse_loss(model->forward(xs), ys) / accum).backward();
    }
    if (sync) {
      sync->finish();
      if (clip > 0) torch::nn::utils::clip_grad_norm_(params, clip);
      ddp_opt->step();
      sync->zero_grad();
    } else {
      zero->step(clip);
      zero->zero_grad();
    }
  }
  if (zero)
    return {flat_params(*model), zero->stage() == 2 ? zero->num_buckets() : 0,
            static_cast<size_t>(zero->reductions_during_backward()), zero->last_launched_early()};
  return {flat_params(*model), sync->num_buckets(), sync->last_launched_during_backward()};
}

const char* mode_name(Mode m) { return m == Mode::ddp ? "ddp" : m == Mode::zero1 ? "zero1" : "zero2"; }

double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

void expect_same_on_every_rank(const torch::Tensor& params) {
  auto from_root = params.clone();
  comm().broadcast(from_root, 0);
  double local = (from_root - params).abs().max().item<double>();
  EXPECT_EQ(comm().all_reduce_double(local, ReduceOp::max), 0.0) << "ranks disagree on the parameters";
}

struct Case {
  Net net;
  Mode mode;
  int accum;
  double clip = 0;  // max gradient norm, 0 = off
};

class Equivalence : public ::testing::TestWithParam<Case> {};

TEST_P(Equivalence, MatchesSingleProcessOnGlobalBatch) {
  const auto c = GetParam();
  auto reference = train_reference(c.net, c.clip);
  auto result = train_distributed(c.net, c.mode, c.accum, c.clip);
  const double rel = relative_difference(result.params, reference);
  const double moved = relative_difference(flat_params(*make_net(c.net, 7)), reference);
  if (comm().rank() == 0)
    std::printf("[equivalence] net=%s mode=%s accum=%d clip=%g np=%d buckets=%zu rel_diff=%.3g (params moved %.3g)\n",
                c.net == Net::mlp ? "mlp" : "conv", mode_name(c.mode), c.accum, c.clip, comm().size(),
                result.buckets, rel, moved);
  EXPECT_LE(rel, 1e-5);
  EXPECT_GT(moved, 1e-2) << "training barely moved the parameters: the comparison would prove nothing";
  if (c.mode == Mode::ddp) {
    EXPECT_GT(result.buckets, 1u);
    // Every bucket of these nets is complete before backward ends, so all start from hooks (overlap).
    EXPECT_EQ(result.launched_during_backward, result.buckets);
  }
  if (c.mode == Mode::zero2) {
    EXPECT_EQ(result.launched_during_backward, size_t(kSteps * c.accum));
    EXPECT_GT(result.buckets, 1u);
    // Reduce-scatters overlap backward: every bucket but the one holding the first-registered parameters is
    // complete (and sent) before backward reaches them.
    EXPECT_GE(result.launched_early, result.buckets - 1);
  }
  expect_same_on_every_rank(result.params);
}

INSTANTIATE_TEST_SUITE_P(Dist, Equivalence,
                         ::testing::Values(Case{Net::mlp, Mode::ddp, 1}, Case{Net::mlp, Mode::ddp, 2},
                                           Case{Net::conv, Mode::ddp, 1}, Case{Net::conv, Mode::ddp, 2},
                                           Case{Net::mlp, Mode::zero1, 1}, Case{Net::mlp, Mode::zero1, 2},
                                           Case{Net::conv, Mode::zero1, 1}, Case{Net::conv, Mode::zero1, 2},
                                           Case{Net::mlp, Mode::zero2, 1}, Case{Net::mlp, Mode::zero2, 2},
                                           Case{Net::conv, Mode::zero2, 2},
                                           Case{Net::mlp, Mode::ddp, 2, 0.05}, Case{Net::mlp, Mode::zero1, 2, 0.05},
                                           Case{Net::mlp, Mode::zero2, 2, 0.05}),
                         [](const auto& info) {
                           const auto& c = info.param;
                           return std::string(c.net == Net::mlp ? "Mlp" : "Conv") +
                                  std::string(c.mode == Mode::ddp ? "Ddp" : c.mode == Mode::zero1 ? "Zero1" : "Zero2") + "Accum" + std::to_string(c.accum) +
                                  (c.clip > 0 ? "Clip" : "");
                         });

// Optimizer-state bytes per rank under ZeRO-1 vs an unsharded torch::optim::AdamW on the same model.
TEST(Zero1, OptimizerStateShrinksByWorldSize) {
  auto model = torch::nn::Sequential(torch::nn::Linear(100, 101), torch::nn::Tanh(), torch::nn::Linear(101, 7));
  auto params = model->parameters();
  torch::optim::AdamW full(params, adamw_options());
  for (auto& p : params) p.mutable_grad() = torch::zeros_like(p);
  full.step();  // materialise the moments
  int64_t full_bytes = 0;
  for (const auto& [key, state] : full.state()) {
    auto& s = static_cast<torch::optim::AdamWParamState&>(*state);
    full_bytes += s.exp_avg().nbytes() + s.exp_avg_sq().nbytes();
  }
  for (auto& p : params) p.mutable_grad().reset();
  ZeroAdamW zero(comm(), params, AdamWConfig{});
  const int64_t mine = zero.moment_bytes();
  const int64_t most = static_cast<int64_t>(comm().all_reduce_double(double(mine), ReduceOp::max));
  const double shrink = double(full_bytes) / double(most);
  if (comm().rank() == 0)
    std::printf("[zero1 state] np=%d unsharded AdamW moments=%lld B, ZeRO-1 per rank=%lld B (+ master %lld B), "
                "shrink=%.3fx\n",
                comm().size(), (long long)full_bytes, (long long)most, (long long)(zero.state_bytes() - mine), shrink);
  EXPECT_GE(shrink, 0.99 * comm().size());
  EXPECT_LE(shrink, comm().size() + 1e-9);
}

// ZeRO-2 also shards the gradient that lives across micro-steps: fp32 shard accumulator vs stage 1's full
// fp32 buffer; and a bf16 model's per-backward buffer is bf16.
TEST(Zero2, AccumulatedGradientShrinksByWorldSize) {
  auto model = torch::nn::Sequential(torch::nn::Linear(100, 101), torch::nn::Tanh(), torch::nn::Linear(101, 7));
  auto params = model->parameters();
  int64_t stage1 = 0, stage2 = 0;
  {
    ZeroAdamW z1(comm(), params, AdamWConfig{}, ZeroOptions{1, true});
    stage1 = z1.accumulated_grad_bytes();
  }
  {
    ZeroAdamW z2(comm(), params, AdamWConfig{}, ZeroOptions{2, true});
    stage2 = z2.accumulated_grad_bytes();
  }
  const double shrink = double(stage1) / double(stage2);
  if (comm().rank() == 0)
    std::printf("[zero2 grads] np=%d stage1 accumulated grad=%lld B, stage2=%lld B, shrink=%.3fx\n", comm().size(),
                (long long)stage1, (long long)stage2, shrink);
  EXPECT_GE(shrink, 0.99 * comm().size());
  EXPECT_LE(shrink, comm().size() + 1e-9);
}

TEST(Zero2, BFloat16ModelTrainsWithFp32ShardAccumulation) {
  torch::manual_seed(11);
  auto model = torch::nn::Sequential(torch::nn::Linear(8, 16), torch::nn::Tanh(), torch::nn::Linear(16, 4));
  auto reference = torch::nn::Sequential(torch::nn::Linear(8, 16), torch::nn::Tanh(), torch::nn::Linear(16, 4));
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < model->parameters().size(); ++i) reference->parameters()[i].copy_(model->parameters()[i]);
  }
  model->to(torch::kBFloat16);
  ZeroAdamW zero(comm(), model->parameters(), AdamWConfig{kLr, 0.9, 0.999, 1e-8, 1e-2}, ZeroOptions{2, true});
  torch::optim::AdamW ref_opt(reference->parameters(), adamw_options());
  const int n = comm().size(), r = comm().rank(), accum = 2, micro = kGlobalBatch / (n * accum);
  for (int s = 0; s < 5; ++s) {
    auto [x, y] = global_batch(Net::mlp, s);
    for (int m = 0; m < accum; ++m) {
      const int64_t begin = static_cast<int64_t>(m * n + r) * micro;
      auto xs = x.narrow(0, begin, micro).to(torch::kBFloat16), ys = y.narrow(0, begin, micro);
      (torch::mse_loss(model->forward(xs).to(torch::kFloat32), ys) / accum).backward();
    }
    zero.step();
    zero.zero_grad();
    ref_opt.zero_grad();
    torch::mse_loss(reference->forward(x), y).backward();
    ref_opt.step();
  }
  ASSERT_EQ(model->parameters()[0].scalar_type(), torch::kBFloat16);
  const double rel = relative_difference(flat_params(*model).to(torch::kFloat32), flat_params(*reference));
  if (comm().rank() == 0) std::printf("[zero2 bf16] np=%d rel_diff vs fp32 reference after 5 steps=%.3g\n", n, rel);
  EXPECT_LE(rel, 2e-2);  // bf16 forward/backward: only a sanity bound
  expect_same_on_every_rank(flat_params(*model).to(torch::kFloat32));
}

}  // namespace
