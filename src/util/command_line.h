// The process's command line as main() received it, for records such as a run's meta.yaml (what was typed, so
// a run can be repeated), without threading argv through every layer.
#pragma once
#include <string>
#include <vector>

namespace dualign {

inline std::vector<std::string>& command_line_storage() {
  static std::vector<std::string> args;
  return args;
}

inline void remember_command_line(int argc, char** argv) { command_line_storage().assign(argv, argv + argc); }

// Empty until main() called remember_command_line (e.g. in unit tests).
inline const std::vector<std::string>& command_line() { return command_line_storage(); }

}  // namespace dualign
