#include "ddo/collective.h"

#include "dist/comm.h"
#include "util/error.h"

namespace dualign::ddo {

Shard make_shard(int64_t total, int64_t block, int rank, int world_size) {
  DUALIGN_CHECK(total >= 1 && block >= 1, "ddo shard: need N >= 1 rows and block >= 1 (got {}, {})", total, block);
  DUALIGN_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "ddo shard: bad rank {} of {}", rank, world_size);
  const int64_t blocks = (total + block - 1) / block;
  auto first = [&](int r) { return blocks * r / world_size; };
  auto rows = [&](int64_t b) { return std::min(b * block, total); };  // first row of block b
  Shard s;
  s.total = total;
  s.block = block;
  s.first_block = first(rank);
  s.num_blocks = first(rank + 1) - s.first_block;
  s.begin = rows(s.first_block);
  s.count = rows(first(rank + 1)) - s.begin;
  for (int r = 0; r < world_size; ++r) s.counts.push_back(rows(first(r + 1)) - rows(first(r)));
  return s;
}

Shard whole(int64_t total) { return make_shard(total, std::max<int64_t>(total, 1), 0, 1); }

double sum_all(dist::Comm* comm, double value) { return comm ? comm->all_reduce_double(value) : value; }

std::vector<double> sum_all(dist::Comm* comm, std::vector<double> values) {
  return comm ? comm->all_reduce_doubles(values) : values;
}

double max_all(dist::Comm* comm, double value) {
  return comm ? comm->all_reduce_double(value, dist::ReduceOp::max) : value;
}

void sum_all_(dist::Comm* comm, torch::Tensor& t) {
  if (comm && comm->size() > 1) comm->all_reduce(t);
}

torch::Tensor gather_rows(dist::Comm* comm, const Shard& shard, const torch::Tensor& local) {
  DUALIGN_CHECK(local.size(0) == shard.count, "ddo gather: this rank holds {} rows, its shard says {}", local.size(0),
                shard.count);
  if (!comm || comm->size() == 1) return local.cpu();
  DUALIGN_CHECK(int64_t(shard.counts.size()) == comm->size(), "ddo gather: shard made for {} ranks, world has {}",
                shard.counts.size(), comm->size());
  // all_gather needs equal sizes: pad every rank's rows to the largest shard, then drop the padding.
  const int64_t most = *std::max_element(shard.counts.begin(), shard.counts.end());
  auto sizes = local.sizes().vec();
  sizes[0] = most;
  auto padded = torch::zeros(sizes, local.options().device(torch::kCPU));
  padded.narrow(0, 0, shard.count).copy_(local);
  sizes[0] = most * comm->size();
  auto all = torch::empty(sizes, padded.options());
  comm->all_gather(all, padded);
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < comm->size(); ++r) parts.push_back(all.narrow(0, r * most, shard.counts[r]));
  return torch::cat(parts, 0);
}

}  // namespace dualign::ddo
