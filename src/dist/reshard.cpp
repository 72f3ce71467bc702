#include "dist/reshard.h"

#include <algorithm>

#include "util/error.h"

namespace dualign::dist {

std::vector<ShardPiece> reshard_pieces(const ShardLayout& saved, const ShardLayout& now, int rank) {
  DUALIGN_CHECK(saved.total == now.total, "re-sharding: the saved shards cover {} parameters, the model has {}",
                saved.total, now.total);
  DUALIGN_CHECK(rank >= 0 && rank < now.world_size, "re-sharding: rank {} outside the world of {}", rank,
                now.world_size);
  std::vector<ShardPiece> pieces;
  const int64_t begin = now.shard_begin(rank), end = begin + now.real_in_shard(rank);
  for (int64_t pos = begin; pos < end;) {
    const int src = static_cast<int>(pos / saved.shard);
    const int64_t src_end = std::min(end, saved.shard_begin(src) + saved.shard);
    pieces.push_back({src, pos - saved.shard_begin(src), pos - begin, src_end - pos});
    pos = src_end;
  }
  return pieces;
}

}  // namespace dualign::dist
