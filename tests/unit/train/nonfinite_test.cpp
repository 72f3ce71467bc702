// train.nonfinite: counting skipped steps, the consecutive limit, abort, fp16 overflow, and the test-only injection.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>

#include "train/nonfinite.h"
#include "train/optimizer.h"
#include "train/settings.h"

using namespace dualign::train;

namespace {

TrainSettings settings(const std::string& action, const std::string& precision = "fp32", int64_t max_consecutive = 3) {
  TrainSettings s;
  s.nonfinite = action;
  s.precision = precision;
  s.nonfinite_max_consecutive = max_consecutive;
  return s;
}

const StepReport kGood{.grad_norm = 0.5, .applied = true};
const StepReport kBadLoss{.grad_norm = NAN, .applied = false, .nonfinite_loss_ranks = 1};
const StepReport kOverflow{.grad_norm = INFINITY, .applied = false, .nonfinite_loss_ranks = 0, .loss_scale = 65536};

std::string error_of(NonFinitePolicy& p, int64_t step, const StepReport& r) {
  try {
    p.after_step(step, r);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(NonFinite, SkipCountsAndStopsAfterTooManyInARow) {
  NonFinitePolicy p(settings("skip"));
  p.after_step(1, kGood);
  p.after_step(2, kBadLoss);
  p.after_step(3, kBadLoss);
  p.after_step(4, kGood);  // resets the run of skipped steps
  EXPECT_EQ(p.skipped_steps(), 2);
  p.after_step(5, kBadLoss);
  p.after_step(6, kOverflow);
  const auto msg = error_of(p, 7, kBadLoss);
  EXPECT_NE(msg.find("step 7"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3 steps in a row"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nonfinite_max_consecutive=3"), std::string::npos) << msg;
}

TEST(NonFinite, AbortStopsAtTheFirstBadStepNamingIt) {
  NonFinitePolicy p(settings("abort"));
  p.after_step(1, kGood);
  const auto msg = error_of(p, 2, kBadLoss);
  EXPECT_NE(msg.find("step 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("loss is not finite on 1 rank"), std::string::npos) << msg;
  EXPECT_NE(msg.find("train.nonfinite=abort"), std::string::npos) << msg;
  NonFinitePolicy q(settings("abort"));
  EXPECT_NE(error_of(q, 3, kOverflow).find("gradient norm is inf"), std::string::npos);
}

TEST(NonFinite, Fp16OverflowIsTheLossScalersBusinessEvenUnderAbort) {
  NonFinitePolicy p(settings("abort", "fp16"));
  p.after_step(1, kOverflow);  // skipped and counted, no abort
  EXPECT_EQ(p.skipped_steps(), 1);
  EXPECT_NE(error_of(p, 2, kBadLoss).find("step 2"), std::string::npos);  // a NaN loss still aborts
}

TEST(NonFinite, StateRoundTrip) {
  NonFinitePolicy a(settings("skip"));
  a.after_step(1, kBadLoss);
  a.after_step(2, kBadLoss);
  NonFinitePolicy b(settings("skip"));
  b.load_state(a.state(), "ckpt.h5");
  EXPECT_EQ(b.skipped_steps(), 2);
  EXPECT_NE(error_of(b, 3, kBadLoss).find("3 steps in a row"), std::string::npos);  // the run continues across it
}

TEST(NonFinite, TestInjectionHitsOneRankAtOneStep) {
  setenv("DUALIGN_TEST_NAN_AT_STEP", "3", 1);
  setenv("DUALIGN_TEST_NAN_RANK", "1", 1);
  auto w = torch::tensor(2.0, torch::requires_grad());
  auto loss = w * w;
  EXPECT_TRUE(torch::equal(inject_test_nan(2, 0, loss), loss));  // other rank
  EXPECT_TRUE(torch::equal(inject_test_nan(1, 1, loss), loss));  // other step (loop index 1 = step 2)
  EXPECT_TRUE(std::isnan(inject_test_nan(2, 1, loss).item<double>()));
  setenv("DUALIGN_TEST_NAN_IN", "grad", 1);
  auto hit = inject_test_nan(2, 1, loss);
  EXPECT_EQ(hit.item<double>(), 4.0);  // the value stays finite ...
  hit.backward();
  EXPECT_TRUE(std::isinf(w.grad().item<double>()));  // ... and the gradient overflows
  unsetenv("DUALIGN_TEST_NAN_AT_STEP");
  unsetenv("DUALIGN_TEST_NAN_RANK");
  unsetenv("DUALIGN_TEST_NAN_IN");
  EXPECT_TRUE(torch::equal(inject_test_nan(2, 1, loss), loss));
}
