// Adafactor under data parallelism (dist/adafactor.h, dist/zero_adafactor.h): 20 steps of an MLP and a small conv
// net with clipping. DDP (GradSync all-reduce, every rank updates everything) must land on the parameters of a
// single-process dist::Adafactor on the full global batch (relative difference <= 1e-5, the bound of
// dist_equivalence_test), and ZeRO-1/2 Adafactor (whole parameters per rank) on DDP Adafactor's (same bound).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "dist/adafactor.h"
#include "dist/comm.h"
#include "dist/grad_sync.h"
#include "dist/zero_adafactor.h"
#include "dist_nets.h"

using namespace dualign::dist;
using namespace dualign::dist::test;

namespace {

constexpr int kSteps = 20;
constexpr double kClip = 0.5;

// The recipe's settings plus weight decay and a first moment, so every part of the update is exercised.
AdafactorConfig config() {
  AdafactorConfig c;
  c.lr = 1e-2;
  c.weight_decay = 1e-2;
  c.beta1 = 0.9;
  return c;
}

torch::Tensor train_reference(Net net) {
  auto model = make_net(net, 7);
  Adafactor opt(model->parameters(), config());
  for (int s = 0; s < kSteps; ++s) {
    auto [x, y] = global_batch(net, s);
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
    torch::mse_loss(model->forward(x), y).backward();
    torch::nn::utils::clip_grad_norm_(model->parameters(), kClip);
    opt.step();
  }
  return flat_params(*model);
}

torch::Tensor train_distributed(Net net, Mode mode, int accum) {
  const int n = comm().size(), r = comm().rank();
  const int micro = kGlobalBatch / (n * accum);
  auto model = make_net(net, 7 + 13 * r);  // the start-up broadcast must make the ranks equal
  auto params = model->parameters();
  std::unique_ptr<GradSync> sync;
  std::unique_ptr<Adafactor> ddp_opt;
  std::unique_ptr<ZeroAdafactor> zero;
  if (mode == Mode::ddp) {
    GradSyncOptions o;
    o.first_bucket_bytes = 256;
    o.bucket_cap_bytes = 2048;
    sync = std::make_unique<GradSync>(comm(), params, o);
    ddp_opt = std::make_unique<Adafactor>(params, config());
  } else {
    ZeroOptions zo;
    zo.stage = mode == Mode::zero1 ? 1 : 2;
    zero = std::make_unique<ZeroAdafactor>(comm(), params, config(), zo);
  }
  for (int s = 0; s < kSteps; ++s) {
    auto [x, y] = global_batch(net, s);
    for (int m = 0; m < accum; ++m) {
      const int64_t begin = static_cast<int64_t>(m * n + r) * micro;
      if (sync) sync->begin_micro_step(m == accum - 1);
      (torch::mse_loss(model->forward(x.narrow(0, begin, micro)), y.narrow(0, begin, micro)) / accum).backward();
    }
    if (sync) {
      sync->finish();
      torch::nn::utils::clip_grad_norm_(params, kClip);
      ddp_opt->step();
      sync->zero_grad();
    } else {
      zero->step(kClip);
      zero->zero_grad();
    }
  }
  return flat_params(*model);
}

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
  int accum;
};

class AdafactorDist : public ::testing::TestWithParam<Case> {};

TEST_P(AdafactorDist, DdpMatchesSingleProcessAndZeroMatchesDdp) {
  const auto c = GetParam();
  const auto reference = train_reference(c.net);
  const auto ddp = train_distributed(c.net, Mode::ddp, c.accum);
  const auto zero1 = train_distributed(c.net, Mode::zero1, c.accum);
  const auto zero2 = train_distributed(c.net, Mode::zero2, c.accum);
  const double moved = relative_difference(flat_params(*make_net(c.net, 7)), reference);
  const double ddp_rel = relative_difference(ddp, reference);
  const double zero1_rel = relative_difference(zero1, ddp), zero2_rel = relative_difference(zero2, ddp);
  if (comm().rank() == 0)
    std::printf("[adafactor dist] net=%s accum=%d np=%d: ddp vs single process %.3g, zero1 vs ddp %.3g, zero2 vs "
                "ddp %.3g (params moved %.3g)\n",
                c.net == Net::mlp ? "mlp" : "conv", c.accum, comm().size(), ddp_rel, zero1_rel, zero2_rel, moved);
  EXPECT_LE(ddp_rel, 1e-5);
  EXPECT_LE(zero1_rel, 1e-5);
  EXPECT_LE(zero2_rel, 1e-5);
  EXPECT_GT(moved, 1e-2) << "training barely moved the parameters: the comparison would prove nothing";
  for (const auto* p : {&ddp, &zero1, &zero2}) expect_same_on_every_rank(*p);
}

INSTANTIATE_TEST_SUITE_P(Dist, AdafactorDist,
                         ::testing::Values(Case{Net::mlp, 1}, Case{Net::mlp, 2}, Case{Net::conv, 1},
                                           Case{Net::conv, 2}),
                         [](const auto& info) {
                           return std::string(info.param.net == Net::mlp ? "Mlp" : "Conv") + "Accum" +
                                  std::to_string(info.param.accum);
                         });

// Each rank keeps the Adafactor state of its own parameters only: together they hold one copy of the unsharded state,
// and no rank more than its share plus the largest parameter's.
TEST(ZeroAdafactor, StateIsSplitAcrossRanks) {
  auto model = make_net(Net::conv, 7);
  auto params = model->parameters();
  Adafactor full(params, config());
  ZeroAdafactor zero(comm(), params, config());
  const int64_t master = zero.layout().shard * 4;
  const int64_t mine = zero.state_bytes() - master;
  const double total = comm().all_reduce_double(double(mine));
  if (comm().rank() == 0)
    std::printf("[zero adafactor state] np=%d unsharded state=%lld B, ZeRO total over ranks=%.0f B, slot=%lld elements\n",
                comm().size(), (long long)full.state_bytes(), total, (long long)zero.layout().shard);
  EXPECT_EQ(total, double(full.state_bytes()));
}

}  // namespace
