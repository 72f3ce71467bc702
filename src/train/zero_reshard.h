// This rank's ZeRO optimizer shard from a checkpoint saved at any world size: read directly when the checkpoint
// has shard files for the current world size, otherwise gathered from the overlapping saved shards
// (dist/reshard.h) so that master weights and Adam moments continue exactly.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

namespace dualign::train {

struct ZeroShard {
  std::map<std::string, at::Tensor> tensors;  // master, exp_avg, exp_avg_sq (this rank's shard) and step
  bool resharded = false;                     // gathered from shards of another world size
  std::string source;                         // the file(s) it came from, for messages
};

// `checkpoint`: the main file of step `step`, saved by `saved_world` ranks; `num_params`: elements of all
// parameters the optimizer shards (the flat vector before padding).
ZeroShard read_zero_shard(const std::string& checkpoint, int64_t step, int saved_world, int64_t num_params, int rank,
                          int world);

}  // namespace dualign::train
