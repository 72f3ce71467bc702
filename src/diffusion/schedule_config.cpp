#include "diffusion/schedule_config.h"

#include "config/config.h"

namespace dualign::diffusion {

ScheduleConfig read_schedule(const config::Section& d) {
  ScheduleConfig c;
  c.kind = d.get<std::string>("schedule");
  c.num_train_timesteps = d.get<int64_t>("num_train_timesteps");
  c.beta_start = d.get<double>("beta_start");
  c.beta_end = d.get<double>("beta_end");
  c.prediction = d.get<std::string>("prediction");
  d.finish();
  return c;
}

}  // namespace dualign::diffusion
