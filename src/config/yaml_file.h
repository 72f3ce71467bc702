// A stand-alone YAML file (e.g. a reward spec `{kind: gmm_target, target: [2.5, 0]}`) as a Config, so typed
// access and strict-key errors name the file and line; and the "file:line" origin of every key, which the
// composer records for the same reason.
#pragma once
#include <yaml-cpp/yaml.h>

#include <map>
#include <string>

#include "config/config.h"

namespace dualign::config {

Config config_from_yaml_file(const std::string& path);

// Records "file:line" for every key of the mappings under `node` (dotted paths below `prefix`).
void record_origins(const YAML::Node& node, const std::string& prefix, const std::string& file,
                    std::map<std::string, std::string>& origins);

}  // namespace dualign::config
