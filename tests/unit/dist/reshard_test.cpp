// ZeRO re-sharding plan: every real element of the new shard comes from exactly the saved element at the same
// flat position, for world sizes up and down, with uneven padding.
#include <gtest/gtest.h>

#include <vector>

#include "dist/reshard.h"

using dualign::dist::make_shard_layout;
using dualign::dist::reshard_pieces;

namespace {

// Simulates the copy: saved shards hold their flat positions as values (padding -1); returns the new shard.
std::vector<int64_t> gathered(int64_t total, int saved_world, int world, int rank) {
  auto saved = make_shard_layout({total}, saved_world);
  auto now = make_shard_layout({total}, world);
  std::vector<int64_t> out(now.shard, -1);
  for (const auto& p : reshard_pieces(saved, now, rank)) {
    EXPECT_GE(p.src_offset, 0);
    EXPECT_LE(p.src_offset + p.length, saved.shard);
    for (int64_t i = 0; i < p.length; ++i) {
      const int64_t flat = saved.shard_begin(p.src_rank) + p.src_offset + i;
      out[p.dst_offset + i] = flat < total ? flat : -1;
    }
  }
  return out;
}

}  // namespace

TEST(DistReshard, EveryElementComesFromItsFlatPosition) {
  for (int64_t total : {1, 7, 10, 13, 64, 1001})
    for (int saved_world : {1, 2, 3, 4, 8})
      for (int world : {1, 2, 3, 4, 5, 8}) {
        auto now = make_shard_layout({total}, world);
        for (int rank = 0; rank < world; ++rank) {
          auto shard = gathered(total, saved_world, world, rank);
          for (int64_t i = 0; i < now.shard; ++i) {
            const int64_t flat = now.shard_begin(rank) + i;
            ASSERT_EQ(shard[i], flat < total ? flat : -1)
                << "total " << total << " saved " << saved_world << " -> " << world << " rank " << rank << " i " << i;
          }
        }
      }
}

TEST(DistReshard, TwoToFourReadsOneSavedShardPerRank) {
  auto saved = make_shard_layout({10}, 2);  // shards of 5
  auto now = make_shard_layout({10}, 4);    // shards of 3 (padded 12)
  auto p = reshard_pieces(saved, now, 1);   // flat [3, 6): saved rank 0 [3,5) + saved rank 1 [0,1)
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].src_rank, 0);
  EXPECT_EQ(p[0].src_offset, 3);
  EXPECT_EQ(p[0].length, 2);
  EXPECT_EQ(p[1].src_rank, 1);
  EXPECT_EQ(p[1].dst_offset, 2);
  EXPECT_EQ(p[1].length, 1);
  EXPECT_TRUE(reshard_pieces(saved, make_shard_layout({10}, 16), 15).empty());  // all padding
}

TEST(DistReshard, RefusesAnotherModel) {
  EXPECT_THROW(reshard_pieces(make_shard_layout({10}, 2), make_shard_layout({11}, 2), 0), std::exception);
}
