// The `diffusion` config section (schedule, timesteps, betas, prediction) as a ScheduleConfig: one reader for
// training, sampling and evaluation, so a run and its checkpoint's config always build the same schedule.
#pragma once
#include "diffusion/schedule.h"

namespace dualign::config {
class Section;
}

namespace dualign::diffusion {

// Strict: unknown keys are errors naming the key.
ScheduleConfig read_schedule(const config::Section& diffusion);

}  // namespace dualign::diffusion
