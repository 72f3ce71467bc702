// The run directory: one per run, created by rank 0 before training, holding everything needed to know what
// ran and to reproduce it:
//   config.yaml        the composed config with interpolations resolved
//   config.raw.yaml    the composed config as written (interpolations kept)
//   overrides.yaml     the command-line overrides and the group choices
//   meta.yaml          git SHA (+dirty flag), dualign/LibTorch versions, world size, hosts, start time, argv
//   metrics.jsonl, tb/ metrics (rank 0);  logs/rank<R>.log per-rank logs;  ckpt/ checkpoints
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace dualign::config {
class Config;
}

namespace dualign::train {

struct RunInfo {
  int world_size = 1;
  std::vector<std::string> argv;
};

// The git commit of the source tree this binary was built from, with "-dirty" if it has local changes;
// "unknown" outside a git checkout.
std::string git_sha();

// Creates `dir` and writes config.yaml, config.raw.yaml, overrides.yaml and meta.yaml (call on rank 0 only).
void write_run_metadata(const std::filesystem::path& dir, const config::Config& cfg, const RunInfo& info);

}  // namespace dualign::train
