// Pure layout functions of dist: DDP bucket assignment and ZeRO shard offsets.
#include <gtest/gtest.h>

#include "dist/grad_sync.h"
#include "dist/zero.h"

using dualign::dist::assign_buckets;
using dualign::dist::make_shard_layout;

TEST(DistBuckets, ReverseOrderWithSmallFirstBucket) {
  // fp32 bytes: 40, 40, 40, 400, 400, 40. First bucket (first-defined params) capped at 100 B, rest at 500 B.
  auto b = assign_buckets({10, 10, 10, 100, 100, 10}, 100, 500);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[2], (std::vector<size_t>{0, 1}));  // first-defined params, reduced last
  EXPECT_EQ(b[1], (std::vector<size_t>{2, 3}));
  EXPECT_EQ(b[0], (std::vector<size_t>{4, 5}));  // last-defined params: ready first in backward
}

TEST(DistBuckets, OversizedParameterGetsItsOwnBucketAndEveryParamOnce) {
  auto b = assign_buckets({5, 1000, 5, 5}, 64, 64);
  std::vector<int> seen(4, 0);
  for (const auto& bucket : b)
    for (size_t i : bucket) ++seen[i];
  EXPECT_EQ(seen, (std::vector<int>{1, 1, 1, 1}));
  bool alone = false;
  for (const auto& bucket : b) alone |= bucket == std::vector<size_t>{1};
  EXPECT_TRUE(alone);
  EXPECT_THROW(assign_buckets({1}, 0, 10), std::exception);
}

TEST(DistShards, PaddingAndOffsets) {
  auto l = make_shard_layout({3, 4, 3}, 4);  // 10 elements over 4 ranks -> shard 3, padded 12
  EXPECT_EQ(l.total, 10);
  EXPECT_EQ(l.shard, 3);
  EXPECT_EQ(l.padded, 12);
  EXPECT_EQ(l.offsets, (std::vector<int64_t>{0, 3, 7}));
  EXPECT_EQ(l.shard_begin(3), 9);
  EXPECT_EQ(l.real_in_shard(0), 3);
  EXPECT_EQ(l.real_in_shard(3), 1);  // 2 padding elements on the last rank
  auto even = make_shard_layout({8}, 2);
  EXPECT_EQ(even.padded, 8);
  EXPECT_EQ(even.real_in_shard(1), 4);
  auto tiny = make_shard_layout({1}, 4);  // fewer elements than ranks: some shards are all padding
  EXPECT_EQ(tiny.real_in_shard(2), 0);
}
