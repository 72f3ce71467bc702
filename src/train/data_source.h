// Where the trainer's micro-batches come from. Every source hands this rank its slice of the global
// micro-batch (step, micro), so the global sample order does not depend on the number of ranks.
#pragma once
#include <torch/torch.h>

#include <memory>

#include "data/batch.h"

namespace dualign::config {
class Section;
}

namespace dualign::train {

struct ShardSpec {
  int rank = 0, world_size = 1;
  int64_t global_micro_batch = 0;  // samples per micro-step over all ranks
  int64_t grad_accum = 1;          // micro-steps per optimizer step
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;
  int64_t local_size() const { return global_micro_batch / world_size; }
  int64_t local_offset() const { return rank * local_size(); }
  // A Batch with only its identity filled in: step, micro-step, seed of (step, micro) and this rank's slice.
  data::Batch identity(int64_t step, int64_t micro) const;
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual data::Batch next(int64_t step, int64_t micro) = 0;
};

// Builds the source named by `data.kind` (strict: unknown keys are errors).
std::unique_ptr<DataSource> make_data_source(const config::Section& data, const ShardSpec& shard);

}  // namespace dualign::train
