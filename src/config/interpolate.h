// `${...}` interpolation:
//   ${a.b}               the value at key a.b (a whole-value reference keeps its type: int, list, map ...)
//   ${env:VAR}           environment variable (error if unset) — ${env:VAR,default} falls back
//   ${now:%Y-%m-%d}      the composition time, strftime-formatted
//   "run-${a.b}-x"       references inside a longer string are concatenated as text
//   \${literal}          an escaped dollar is kept as "${literal}"
// Cycles (a: ${b}, b: ${a}) are errors that print the chain.
#pragma once
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <functional>
#include <string>

namespace dualign::config {

// Returns a resolved deep copy of `root`. `origin(key)` names where a key came from, for error messages.
YAML::Node resolve_interpolations(const YAML::Node& root, std::chrono::system_clock::time_point now,
                                  const std::function<std::string(const std::string&)>& origin = {});

}  // namespace dualign::config
