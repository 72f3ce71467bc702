#include "eval/yaml_config.h"

#include <fmt/format.h>

#include <filesystem>

#include "util/error.h"

namespace dualign::eval {
namespace {

// Records "file:line" for every key so Section errors say where a bad value came from.
void record_origins(const YAML::Node& node, const std::string& prefix, const std::string& file,
                    std::map<std::string, std::string>& origins) {
  if (!node.IsMap()) return;
  for (const auto& kv : node) {
    const std::string key = prefix.empty() ? kv.first.as<std::string>() : prefix + "." + kv.first.as<std::string>();
    origins[key] = fmt::format("{}:{}", file, kv.first.Mark().line + 1);
    record_origins(kv.second, key, file, origins);
  }
}

}  // namespace

config::Config config_from_yaml_file(const std::string& path) {
  DUALIGN_CHECK(std::filesystem::is_regular_file(path), "YAML file {} does not exist", path);
  YAML::Node node;
  try {
    node = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail("cannot parse YAML file {}: {}", path, e.what());
  }
  DUALIGN_CHECK(node.IsMap(), "YAML file {}: expected a mapping (e.g. {{kind: gmm_target, target: [2.5, 0]}})", path);
  config::Composed composed;
  composed.config = composed.resolved = node;
  record_origins(node, "", path, composed.origins);
  return config::Config(std::move(composed));
}

}  // namespace dualign::eval
