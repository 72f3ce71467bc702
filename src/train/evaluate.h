// End-of-training evaluation, chosen by the data kind: for the 2-D Gaussian mixture, samples from the model
// are compared with exact samples (energy distance, next to the floor of two exact sample sets) and scored
// by the exact log-density.
#pragma once
#include <map>
#include <string>

namespace dualign::config {
class Config;
}
namespace dualign::diffusion {
class NoiseSchedule;
}
namespace dualign::dist {
class Comm;
}
namespace dualign::models {
class ScoreModel;
}

namespace dualign::train {
struct TrainSettings;

std::map<std::string, double> evaluate(const config::Config& cfg, const TrainSettings& s, models::ScoreModel& model,
                                       const diffusion::NoiseSchedule& schedule, dist::Comm& comm);

}  // namespace dualign::train
