// Dotted-path access into yaml-cpp trees ("train.optimizer.lr").
// yaml-cpp nodes have reference semantics (assigning one Node to another writes through to the document), so
// every function here that returns or stores a subtree deep-copies it with YAML::Clone.
#pragma once
#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <vector>

namespace dualign::config {

std::vector<std::string> split_path(const std::string& path);
std::string join_path(const std::string& prefix, const std::string& key);

// The node at `path`, or nullopt if any component is missing (never creates nodes).
std::optional<YAML::Node> find(const YAML::Node& root, const std::string& path);
// Sets `path` to a clone of `value`, creating intermediate maps.
void set(YAML::Node& root, const std::string& path, const YAML::Node& value);
// Removes `path`; returns false if it did not exist.
bool erase(YAML::Node& root, const std::string& path);
// Recursively merges `src` into `dst`: maps merge key by key, anything else replaces.
void merge_into(YAML::Node& dst, const YAML::Node& src);
// Every key path in the tree (maps only; sequences are leaves), depth-first in document order.
std::vector<std::string> all_paths(const YAML::Node& root, const std::string& prefix = "");
// Emits a node as block YAML.
std::string to_yaml(const YAML::Node& node);

}  // namespace dualign::config
