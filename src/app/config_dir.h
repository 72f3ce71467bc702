// Where the configs live: --config-dir, else $DUALIGN_CONFIG_DIR, else ./configs, else the source tree's.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#include "dualign/build_info.h"

namespace dualign::app {

inline std::filesystem::path resolve_config_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("DUALIGN_CONFIG_DIR")) return env;
  if (std::filesystem::exists("configs/config.yaml")) return "configs";
  return std::filesystem::path(DUALIGN_SOURCE_DIR) / "configs";
}

}  // namespace dualign::app
