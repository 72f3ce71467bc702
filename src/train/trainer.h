// The training loop shared by every method (the spine; docs/architecture.md#one-training-step, src/train/README.md).
#pragma once

namespace dualign::config {
class Config;
}
namespace dualign::dist {
struct World;
}

namespace dualign::train {

// Trains the configured model with the configured method on this rank's shard; returns the exit code.
// Rank 0 writes the run directory (config, overrides, git SHA), metrics (JSONL + TensorBoard) and progress.
int run_training(const config::Config& cfg, const dist::World& world);

}  // namespace dualign::train
