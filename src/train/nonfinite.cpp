#include "train/nonfinite.h"

#include <torch/torch.h>

#include <cstdlib>
#include <limits>

#include "train/optimizer.h"
#include "train/settings.h"
#include "util/error.h"
#include "util/log.h"

namespace dualign::train {

NonFinitePolicy::NonFinitePolicy(const TrainSettings& s)
    : abort_(s.nonfinite == "abort"), fp16_(s.precision == "fp16"), max_consecutive_(s.nonfinite_max_consecutive) {}

void NonFinitePolicy::after_step(int64_t step, const StepReport& report) {
  if (report.applied) {
    consecutive_ = 0;
    return;
  }
  ++skipped_;
  ++consecutive_;
  const std::string cause =
      report.nonfinite_loss_ranks > 0
          ? fmt::format("the loss is not finite on {} rank(s) (each rank's log names its own)", report.nonfinite_loss_ranks)
          : fmt::format("the gradient norm is {} with finite losses on every rank", report.grad_norm);
  const bool scale_overflow = fp16_ && report.nonfinite_loss_ranks == 0;
  if (abort_ && !scale_overflow)
    fail("step {}: {}; train.nonfinite=abort stops the run here, before any checkpoint of this step (the last "
         "checkpoint in run.dir/ckpt is the last good state)", step, cause);
  if (consecutive_ >= max_consecutive_)
    fail("step {}: {} steps in a row were skipped as non-finite (train.nonfinite_max_consecutive={}); last cause: {}",
         step, consecutive_, max_consecutive_, cause);
  if (scale_overflow)
    log::info("step {}: fp16 gradient overflow at loss scale {:g}: step skipped, scale halved", step, report.loss_scale);
  else
    log::warn("step {}: {}: optimizer step skipped on every rank ({} skipped so far)", step, cause, skipped_);
}

std::map<std::string, at::Tensor> NonFinitePolicy::state() const {
  return {{"skipped_steps", torch::tensor(skipped_, torch::kInt64)},
          {"consecutive", torch::tensor(consecutive_, torch::kInt64)}};
}

void NonFinitePolicy::load_state(const std::map<std::string, at::Tensor>& state, const std::string& source) {
  for (const char* key : {"skipped_steps", "consecutive"})
    if (!state.count(key)) fail("checkpoint {}: tensor 'nonfinite/{}' is missing", source, key);
  skipped_ = state.at("skipped_steps").item<int64_t>();
  consecutive_ = state.at("consecutive").item<int64_t>();
}

namespace {

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long value = std::strtoll(v, &end, 10);
  DUALIGN_CHECK(*end == '\0', "{}='{}': expected an integer", name, v);
  return value;
}

}  // namespace

at::Tensor inject_test_nan(int64_t step, int rank, const at::Tensor& loss) {
  const int64_t at_step = env_int("DUALIGN_TEST_NAN_AT_STEP", -1);
  const int64_t on_rank = env_int("DUALIGN_TEST_NAN_RANK", 0);
  if (at_step < 0 || step + 1 != at_step || rank != on_rank) return loss;
  const char* in = std::getenv("DUALIGN_TEST_NAN_IN");
  const std::string where = in ? in : "loss";
  DUALIGN_CHECK(where == "loss" || where == "grad", "DUALIGN_TEST_NAN_IN='{}': expected loss or grad", where);
  log::warn("test fault injection: non-finite {} on rank {} at step {}", where, rank, at_step);
  if (where == "loss") return loss * std::numeric_limits<double>::quiet_NaN();
  auto out = loss.clone();
  out.register_hook([](const at::Tensor& grad) { return grad * std::numeric_limits<double>::infinity(); });
  return out;
}

}  // namespace dualign::train
