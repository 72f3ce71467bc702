// Hydra-style command-line overrides:
//   key=value     change an existing key (error if it does not exist)
//   +key=value    add a new key (error if it exists)
//   ++key=value   add or change
//   ~key          delete a key (~key=value deletes only if the current value matches)
//   group=option  choose a config group option (e.g. method=dmpo); +group=option adds a group; ~group drops it
// Values are typed by YAML: 3 is an int, 3.0 a float, true a bool, [1,2] a list, "3" a string.
#pragma once
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace dualign::config {

struct Override {
  enum class Kind { change, add, force, remove };
  Kind kind = Kind::change;
  std::string key;
  YAML::Node value;      // undefined for `~key` without value
  bool has_value = false;
  std::string text;      // the override as the user typed it, for messages
  std::string raw_value; // the value text before YAML parsing
};

Override parse_override(const std::string& text);
std::vector<Override> parse_overrides(const std::vector<std::string>& texts);

// A value that is a sweep (a,b or choice()/range(), see sweep.h) is an error here that suggests -m.
// Multirun: `a=1,2 b=x,y` expands to the cartesian product of override lists (a=1 b=x, a=1 b=y, a=2 b=x, ...),
// first override varying slowest. Commas inside [], {}, () or quotes do not split; choice() and range() expand.
std::vector<std::vector<std::string>> expand_multirun(const std::vector<std::string>& texts);

}  // namespace dualign::config
