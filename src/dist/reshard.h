// Re-sharding ZeRO optimizer state to another world size (DeepSpeed's "universal checkpoint" idea, done on
// load): the flat fp32 vectors (master, exp_avg, exp_avg_sq) are the same for every world size up to the
// padding at the end, so rank r of the new world gathers its slice from the saved shards that overlap it.
#pragma once
#include <cstdint>
#include <vector>

#include "dist/zero.h"

namespace dualign::dist {

// One contiguous copy: saved shard `src_rank`, elements [src_offset, +length) -> new shard [dst_offset, +length).
struct ShardPiece {
  int src_rank = 0;
  int64_t src_offset = 0, dst_offset = 0, length = 0;
};

// The copies that fill the real (non-padding) part of `rank`'s shard in `now` from the shards of `saved`.
// Both layouts must describe the same parameters (equal total). Padding stays zero.
std::vector<ShardPiece> reshard_pieces(const ShardLayout& saved, const ShardLayout& now, int rank);

}  // namespace dualign::dist
