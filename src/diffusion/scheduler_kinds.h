// The scheduler implementations behind make_scheduler (diffusion/scheduler.h), one file each.
#pragma once
#include <memory>

#include "diffusion/scheduler.h"

namespace dualign::diffusion {

std::unique_ptr<Scheduler> make_discrete_scheduler(const NoiseSchedule& schedule, const SamplerConfig& config);  // ddim, ddpm
std::unique_ptr<Scheduler> make_pndm_scheduler(const NoiseSchedule& schedule, const SamplerConfig& config);
std::unique_ptr<Scheduler> make_euler_scheduler(const NoiseSchedule& schedule, const SamplerConfig& config);  // euler, euler_ancestral
std::unique_ptr<Scheduler> make_dpm_solver_scheduler(const NoiseSchedule& schedule, const SamplerConfig& config);

}  // namespace dualign::diffusion
