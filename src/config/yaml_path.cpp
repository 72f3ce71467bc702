#include "config/yaml_path.h"

#include <sstream>

#include "util/error.h"

namespace dualign::config {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(path);
  while (std::getline(in, part, '.')) {
    DUALIGN_CHECK(!part.empty(), "malformed config key '{}': empty component", path);
    parts.push_back(part);
  }
  DUALIGN_CHECK(!parts.empty(), "empty config key");
  return parts;
}

std::string join_path(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

std::optional<YAML::Node> find(const YAML::Node& root, const std::string& path) {
  YAML::Node node = root;  // const operator[] on a const ref never inserts
  for (const auto& key : split_path(path)) {
    if (!node.IsMap()) return std::nullopt;
    const YAML::Node& cnode = node;
    YAML::Node child = cnode[key];
    if (!child.IsDefined()) return std::nullopt;
    node.reset(child);
  }
  return node;
}

void set(YAML::Node& root, const std::string& path, const YAML::Node& value) {
  auto parts = split_path(path);
  YAML::Node node = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child = node[parts[i]];
    if (!child.IsMap()) node[parts[i]] = YAML::Node(YAML::NodeType::Map);
    node.reset(node[parts[i]]);
  }
  node[parts.back()] = YAML::Clone(value);
}

bool erase(YAML::Node& root, const std::string& path) {
  auto parts = split_path(path);
  std::string last = parts.back();
  parts.pop_back();
  YAML::Node parent = root;
  for (const auto& key : parts) {
    if (!parent.IsMap() || !parent[key].IsDefined()) return false;
    parent.reset(parent[key]);
  }
  if (!parent.IsMap() || !parent[last].IsDefined()) return false;
  return parent.remove(last);
}

void merge_into(YAML::Node& dst, const YAML::Node& src) {
  if (!src.IsMap() || !dst.IsMap()) {
    dst = YAML::Clone(src);
    return;
  }
  for (const auto& kv : src) {
    auto key = kv.first.as<std::string>();
    YAML::Node d = dst[key];
    if (d.IsMap() && kv.second.IsMap()) {
      merge_into(d, kv.second);
    } else {
      dst[key] = YAML::Clone(kv.second);
    }
  }
}

std::vector<std::string> all_paths(const YAML::Node& root, const std::string& prefix) {
  std::vector<std::string> out;
  if (!root.IsMap()) return out;
  for (const auto& kv : root) {
    auto path = join_path(prefix, kv.first.as<std::string>());
    out.push_back(path);
    auto sub = all_paths(kv.second, path);
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::string to_yaml(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return std::string(out.c_str()) + "\n";
}

}  // namespace dualign::config
