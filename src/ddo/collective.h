// How DDO spreads its reference samples over ranks, and the few collectives it needs on them.
//
// The N reference samples (and every other sample set DDO draws) are cut into blocks of `block` rows; block b
// is drawn with its own seed, derived from (seed, purpose, b), and rank r holds a contiguous range of blocks.
// So the global set — and its order — is the same for any world size, and a statistic summed over ranks
// equals the single-process one up to float summation order.
//
// Every collective takes a nullable communicator: nullptr means one process (unit tests), and then the
// helpers are the identity.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace dualign::dist {
class Comm;
}

namespace dualign::ddo {

struct Shard {
  int64_t total = 0;            // N, over all ranks
  int64_t begin = 0, count = 0; // this rank's rows [begin, begin + count)
  int64_t block = 0;            // rows per seeded block
  int64_t first_block = 0, num_blocks = 0;  // this rank's blocks
  std::vector<int64_t> counts;  // rows per rank (for gathers)
};
// Blocks are dealt out contiguously: rank r gets blocks [⌊B·r/W⌋, ⌊B·(r+1)/W⌋) of the B = ⌈N/block⌉ blocks.
Shard make_shard(int64_t total, int64_t block, int rank, int world_size);
Shard whole(int64_t total);  // one process holding everything (block = total)

double sum_all(dist::Comm* comm, double value);
std::vector<double> sum_all(dist::Comm* comm, std::vector<double> values);
double max_all(dist::Comm* comm, double value);
// In-place sum of a tensor over ranks (contiguous CPU tensor).
void sum_all_(dist::Comm* comm, torch::Tensor& t);

// The global [N, ...] tensor from every rank's rows (in rank order, i.e. global order). CPU.
torch::Tensor gather_rows(dist::Comm* comm, const Shard& shard, const torch::Tensor& local);

}  // namespace dualign::ddo
