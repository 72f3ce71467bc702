// Pure layout functions of dist: DDP bucket assignment and ZeRO shard offsets.
#include <gtest/gtest.h>

#include "dist/grad_sync.h"
#include "dist/zero.h"
#include "dist/zero_adafactor.h"

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

// Adafactor's ZeRO assignment: whole parameters, largest first onto the least-loaded rank; each rank's parameters
// contiguous (in their order) at the start of its slot; the slot is the largest load.
TEST(DistOwnerLayout, WholeParametersBalancedAndContiguous) {
  using dualign::dist::make_owner_layout;
  auto l = make_owner_layout({10, 100, 30, 60, 5}, 2);
  // 100 -> rank 0; 60 -> rank 1; 30 -> rank 1 (60 < 100); 10 -> rank 1 (90 < 100); 5 -> rank 0 (tie: lower rank)
  EXPECT_EQ(l.owner, (std::vector<int>{1, 0, 1, 1, 0}));
  EXPECT_EQ(l.load, (std::vector<int64_t>{105, 100}));
  EXPECT_EQ(l.shard, 105);
  EXPECT_EQ(l.padded, 210);
  // rank 0: params 1, 4 at [0, 100), [100, 105); rank 1: params 0, 2, 3 at 105, 115, 145
  EXPECT_EQ(l.offsets, (std::vector<int64_t>{105, 0, 115, 145, 100}));
  auto one = make_owner_layout({3, 4}, 1);  // one rank: the plain concatenation, no padding
  EXPECT_EQ(one.offsets, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(one.padded, 7);
  auto idle = make_owner_layout({8}, 3);  // more ranks than parameters: the others own nothing
  EXPECT_EQ(idle.load, (std::vector<int64_t>{8, 0, 0}));
  EXPECT_EQ(idle.padded, 24);
}

TEST(DistLayout, BucketsInReadyOrderPutFirstReadyFirstAndCapTheLastReady) {
  // Parameters 0..3 of 10 floats (40 bytes); ready order 2, 0, 3, 1; caps: last-ready bucket 40 B, others 80 B.
  // Packed from the last-ready end: {1} (40 B cap), {3, 0}, {2}; bucket 0 is the first ready.
  auto b = dualign::dist::assign_buckets_in_ready_order({10, 10, 10, 10}, {2, 0, 3, 1}, 40, 80);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0], (std::vector<size_t>{2}));
  EXPECT_EQ(b[1], (std::vector<size_t>{3, 0}));
  EXPECT_EQ(b[2], (std::vector<size_t>{1}));  // the last-ready parameter alone (first_bucket_bytes)
  EXPECT_ANY_THROW(dualign::dist::assign_buckets_in_ready_order({10, 10}, {0}, 40, 80));
}

// ZeRO-2 buckets: whole parameters from the end of the flat vector, capped in bytes of the buffer's dtype; an
// oversized parameter alone; every parameter once.
TEST(DistZeroBuckets, FromTheEndOfTheFlatVectorCappedByBytes) {
  const std::vector<int64_t> numels{100, 10, 300, 10, 50}, offsets{0, 100, 110, 410, 420};
  auto b = dualign::dist::assign_flat_buckets(numels, offsets, 4, 400);  // 100 fp32 elements per bucket
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[0], (std::vector<size_t>{4, 3}));  // 50 + 10 elements, the next 300 would overflow
  EXPECT_EQ(b[1], (std::vector<size_t>{2}));     // oversized: alone
  EXPECT_EQ(b[2], (std::vector<size_t>{1}));     // 10 + 100 > 100
  EXPECT_EQ(b[3], (std::vector<size_t>{0}));
  // bf16 buffers hold twice the elements per byte cap
  EXPECT_EQ(dualign::dist::assign_flat_buckets(numels, offsets, 2, 400)[2], (std::vector<size_t>{1, 0}));
  EXPECT_THROW(dualign::dist::assign_flat_buckets(numels, offsets, 4, 0), std::exception);
}

TEST(DistZeroBuckets, SlotCountsSplitARangeAcrossOwners) {
  using dualign::dist::slot_counts;
  EXPECT_EQ(slot_counts(5, 25, 10, 3), (std::vector<int64_t>{5, 10, 5}));  // straddles all three slots
  EXPECT_EQ(slot_counts(12, 18, 10, 3), (std::vector<int64_t>{0, 6, 0}));
  EXPECT_EQ(slot_counts(20, 30, 10, 3), (std::vector<int64_t>{0, 0, 10}));
  EXPECT_EQ(slot_counts(0, 7, 7, 1), (std::vector<int64_t>{7}));
}
