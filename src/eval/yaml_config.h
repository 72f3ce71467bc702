// A stand-alone YAML file (e.g. a reward spec `{kind: gmm_target, target: [2.5, 0]}`) as a config::Config, so
// typed access and strict-key errors name the file and line.
#pragma once
#include <string>

#include "config/config.h"

namespace dualign::eval {

config::Config config_from_yaml_file(const std::string& path);

}  // namespace dualign::eval
