// Hydra-style composition on yaml-cpp.
//
// configs/config.yaml holds a `defaults:` list over config groups (directories: model/ method/ data/ dist/
// train/ experiment/) and `_self_`, the primary file's own keys. Entries merge in list order, later ones win;
// without `_self_` the primary file merges last (Hydra >= 1.1). A group file lands under its group's key unless
// its first line is `# @package _global_` (experiments), and may carry its own defaults:
// `- override /method: dmpo` to change another group's choice, `- base_name` to extend a sibling file.
// Command-line overrides (see overrides.h) apply after composition; `${...}` interpolation (interpolate.h)
// resolves last.
#pragma once
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace dualign::config {

struct ComposeOptions {
  std::filesystem::path config_dir;
  std::string config_name = "config";
  std::vector<std::string> overrides;
  // The time `${now:...}` formats. Under MPI every rank must use rank 0's time (broadcast it) so that run
  // directories agree.
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
};

struct Composed {
  YAML::Node config;    // composed with overrides applied, interpolations left as written
  YAML::Node resolved;  // the same with every ${...} resolved
  std::vector<std::pair<std::string, std::string>> choices;  // group -> chosen option, in defaults order
  std::vector<std::string> overrides;                          // as given on the command line
  std::map<std::string, std::string> origins;                  // key path -> "file:line" or "override 'k=v'"

  // Where `key` (or its closest ancestor) was set, e.g. "configs/train/default.yaml:4"; "" if unknown.
  std::string origin(const std::string& key) const;
};

Composed compose(const ComposeOptions& options);

// The option names available for a config group (file stems in config_dir/group).
std::vector<std::string> group_options(const std::filesystem::path& config_dir, const std::string& group);

}  // namespace dualign::config
