#include "config/yaml_file.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "config/duplicate_keys.h"
#include "config/yaml_path.h"
#include "util/error.h"

namespace dualign::config {

void record_origins(const YAML::Node& node, const std::string& prefix, const std::string& file,
                    std::map<std::string, std::string>& origins) {
  if (!node.IsMap()) return;
  for (const auto& kv : node) {
    auto path = join_path(prefix, kv.first.as<std::string>());
    origins[path] = file + ":" + std::to_string(kv.first.Mark().line + 1);
    record_origins(kv.second, path, file, origins);
  }
}

Config config_from_yaml_file(const std::string& path) {
  DUALIGN_CHECK(std::filesystem::is_regular_file(path), "YAML file {} does not exist", path);
  std::ifstream in(path);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  check_duplicate_keys(text, "YAML file " + path);
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("cannot parse YAML file {}: {}", path, e.what());
  }
  DUALIGN_CHECK(node.IsMap(), "YAML file {}: expected a mapping (e.g. {{kind: gmm_target, target: [2.5, 0]}})", path);
  Composed composed;
  composed.config = composed.resolved = node;
  record_origins(node, "", path, composed.origins);
  return Config(std::move(composed));
}

}  // namespace dualign::config
