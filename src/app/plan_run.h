// `dualign plan` of one training config (`dualign plan experiment=... [overrides]`): the memory rows of exactly
// that run, read from the composed config as `dualign train` reads it (model architecture and LoRA, method,
// dist.zero_stage, train.precision / optimizer / micro-batch, dist.reduce_dtype, method.reference_dtype), and
// with --measure its activations measured on the CPU instead of the inferred anchors.
#pragma once
#include <cstdint>
#include <utility>

#include "dist/memory_plan.h"

namespace dualign::config {
class Config;
}

namespace dualign::app {

struct RunPlan {
  dist::PlanInput input;
  bool checkpointing = false;  // model.gradient_checkpointing: the run's total is total_ckpt, else total_full
};
RunPlan plan_run(const config::Config& cfg, int world);

// Activations of one training sample, GB: the rise of the allocator's peak over a forward + backward of the
// config's UNet from `batches[0]` to `batches[1]` samples, per sample (the weights, their autocast copies and the
// gradients appear in both and cancel), with and without gradient checkpointing, under the run's precision, on
// the CPU. Input: latents [C, latent_size, latent_size] (0: the UNet's sample_size), `text_tokens`
// text-embedding rows where the UNet cross-attends.
struct MeasuredActivations {
  double ckpt_gb = 0, full_gb = 0;
  int64_t adafactor_state = 0;  // exact, from the built model's shapes (without a first moment)
  int64_t latent_size = 0;      // the one used
};
// checkpointed_only: skip the measurement without checkpointing (full_gb stays 0), for models whose activations
// without it do not fit the host.
MeasuredActivations measure_activations(const config::Config& cfg, int64_t latent_size, int64_t text_tokens,
                                        std::pair<int64_t, int64_t> batches = {2, 4}, bool checkpointed_only = false);

}  // namespace dualign::app
