// Pieces shared by `dualign sample` and `dualign eval`: launcher rank, device choice, sampler settings and
// class conditions read from a trained model's checkpoint.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "diffusion/sampler.h"
#include "models/score_model.h"

namespace dualign::app {

// This process's rank from the launcher's environment (mpirun, srun; 0 when launched directly). The sample and
// eval commands run on one process: other ranks do nothing, so they never write the same file twice.
int launcher_rank();

// "auto" → cuda when available, else cpu; otherwise a torch device string ("cpu", "cuda:1").
torch::Device pick_device(const std::string& name);

// A discrete sampler config (kind ddim | ddpm), steps >= 1, eta >= 0 (ddim only).
diffusion::SamplerConfig sampler_config(const std::string& kind, int64_t steps, double eta);

// Class count of a trained model, from its checkpoint's config: model.num_classes for the MLP,
// model.num_class_embeds − 1 for the UNet (the last label is the null class used by classifier-free guidance);
// 0 for unconditional models.
int64_t num_classes_of(const std::string& checkpoint);

// n class ids: `class_id` >= 0 → all rows that class; "all" (class_id < 0) → an even split in blocks, row i gets
// class ⌊i·K/n⌋ (counts differ by at most one). Returns an empty condition when num_classes == 0 and no class is asked.
data::Condition class_condition(int64_t n, int64_t class_id, int64_t num_classes, const std::string& model);

}  // namespace dualign::app
