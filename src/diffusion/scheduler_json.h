// diffusers' scheduler_config.json ↔ dualign's ScheduleConfig (betas, prediction) + SamplerConfig (the inference
// scheduler). Reading follows SchedulerClass.from_config(config): the class is the file's _class_name unless a
// kind is asked for; keys the class does not have are ignored (a PNDM config read as Euler drops skip_prk_steps),
// keys it has but the file lacks take the class's diffusers defaults (Euler: timestep_spacing linspace). Settings
// dualign does not implement (thresholding, zero-SNR rescaling, trained_betas, SDE variants, ...) are errors that
// name the key and the file.
#pragma once
#include <string>
#include <vector>

#include "diffusion/sampler.h"
#include "diffusion/schedule.h"

namespace dualign::diffusion {

struct SchedulerSpec {
  ScheduleConfig schedule;
  SamplerConfig sampler;        // num_inference_steps and eta are not part of the file: set them afterwards
  std::string class_name;       // the diffusers class, e.g. PNDMScheduler
  std::vector<std::string> ignored_keys;  // keys no supported scheduler has (e.g. from a newer diffusers)
};

// Sampler kinds and their diffusers classes: ddim DDIMScheduler, ddpm DDPMScheduler, pndm PNDMScheduler, euler
// EulerDiscreteScheduler, euler_ancestral EulerAncestralDiscreteScheduler, dpmsolver++ DPMSolverMultistepScheduler.
std::string diffusers_class_of(const std::string& kind);
std::string kind_of_diffusers_class(const std::string& class_name, const std::string& origin);

// The diffusers class defaults of `kind` (what SchedulerClass() uses for a key that is not given).
SchedulerSpec diffusers_defaults(const std::string& kind);

// `json_text` is a scheduler_config.json; `origin` names it in errors. `kind` (optional) overrides _class_name.
// `overrides` are key=value with diffusers key names and JSON values (`use_karras_sigmas=true`,
// `timestep_spacing=trailing`; a value that is not JSON is taken as a string), applied after the file.
SchedulerSpec parse_scheduler_config(const std::string& json_text, const std::string& origin,
                                     const std::string& kind = "", const std::vector<std::string>& overrides = {});

// A scheduler_config.json path: the file itself, DIR/scheduler_config.json or DIR/scheduler/scheduler_config.json
// (a pipeline root). Empty when there is none.
std::string find_scheduler_config(const std::string& path);
SchedulerSpec read_scheduler_config(const std::string& path, const std::string& kind = "",
                                    const std::vector<std::string>& overrides = {});

// The scheduler_config.json (text) of the diffusers class of sampler.kind, holding every key that class reads.
std::string scheduler_config_json(const ScheduleConfig& schedule, const SamplerConfig& sampler);

// Whether two noise schedules build the same betas (kind, T, beta range to 1e-9 relative, prediction type).
bool same_schedule(const ScheduleConfig& a, const ScheduleConfig& b);
std::string describe(const ScheduleConfig& schedule);

}  // namespace dualign::diffusion
