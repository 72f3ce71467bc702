// Typed, strict access to a composed config.
//
//   Config cfg = Config::compose({.config_dir = "configs", .overrides = {"method=dpo", "train.steps=100"}});
//   auto train = cfg.section("train");
//   int64_t steps = train.get<int64_t>("steps");          // required: missing -> error naming key and file
//   double lr = train.get<double>("lr", 1e-4);             // optional with default
//   train.finish();                                        // unknown keys in train.* -> error + suggestion
//
// Every error names the key, where it was set (file:line or the command-line override) and what was expected.
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/compose.h"

namespace dualign::config {

class Section;

class Config {
 public:
  static Config compose(const ComposeOptions& options);
  explicit Config(Composed composed);

  Section section(const std::string& path) const;  // error if missing or not a map
  Section root() const;
  bool has(const std::string& path) const;
  const YAML::Node& resolved() const { return composed_->resolved; }
  const Composed& composed() const { return *composed_; }
  std::string origin(const std::string& key) const { return composed_->origin(key); }

  std::string to_yaml(bool resolve) const;  // the composed config as YAML text (resolved or as written)

 private:
  std::shared_ptr<const Composed> composed_;
};

class Section {
 public:
  Section(std::shared_ptr<const Composed> composed, std::string prefix, YAML::Node node);

  template <typename T> T get(const std::string& key) const;                    // required
  template <typename T> T get(const std::string& key, const T& fallback) const;  // optional
  bool has(const std::string& key) const;
  Section section(const std::string& key) const;
  std::vector<std::string> keys() const;
  const std::string& prefix() const { return prefix_; }
  std::string path(const std::string& key) const;

  // Fails if the section holds keys nobody read, naming each with the closest valid (read) key.
  // `also_known` lists keys that are valid but intentionally not read here.
  void finish(const std::vector<std::string>& also_known = {}) const;

  // The resolved YAML of this section, for consumers that parse a whole foreign schema (e.g. a diffusers UNet
  // config); they validate keys themselves.
  const YAML::Node& node() const { return node_; }

 private:
  YAML::Node child(const std::string& key) const;
  std::string where(const std::string& key) const;
  [[noreturn]] void type_error(const std::string& key, const char* expected, const YAML::Node& node) const;

  std::shared_ptr<const Composed> composed_;
  std::string prefix_;
  YAML::Node node_;
  mutable std::set<std::string> read_;
};

}  // namespace dualign::config
