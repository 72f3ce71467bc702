// Self-checks of a communicator (`dualign doctor`): all-reduces whose exact result every rank can compute,
// and an all-reduce bus-bandwidth sweep over message sizes, as nccl-tests reports it
// (busbw = bytes / time * 2 (n - 1) / n, comparable across world sizes). Both are collectives.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dist/comm.h"

namespace dualign::dist {

struct AllReduceCheck {
  std::string what;        // "sum float32 x 1048579"
  double max_error = 0;    // max over ranks and elements of |result - expected|
  bool ok = false;         // exact (sums of small integers), or within 1e-6 relative for avg
};
// Sum and average, float32 and bfloat16, small and large messages (one not a multiple of the world size).
std::vector<AllReduceCheck> check_all_reduce(Comm& comm);

struct BandwidthPoint {
  int64_t bytes = 0;
  int iterations = 0;
  double seconds = 0;  // per all-reduce, from rank 0's clock
  double algbw_gbps = 0, busbw_gbps = 0;
};
// float32 all-reduces from min_bytes to max_bytes (x4 steps; both ends included), each size repeated for
// about `seconds_per_size` (at most 20 times, at least once) after one warm-up.
std::vector<BandwidthPoint> all_reduce_bandwidth(Comm& comm, int64_t min_bytes, int64_t max_bytes,
                                                 double seconds_per_size = 0.2);

}  // namespace dualign::dist
