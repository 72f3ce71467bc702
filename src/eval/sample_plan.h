// How `dualign sample` splits its rows over ranks and puts the ranks' parts back together. Rows are numbered in a
// fixed global order (prompt-major: prompt 0's images, then prompt 1's ...); consecutive rows form batches of a
// fixed size and batch b is sampled by rank b % world. Every row has its own seed and the batches are the same
// for any world size, so the merged file is the same, bit for bit, at np=1 and np=8.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/samples_io.h"

namespace dualign::eval {

// The seed of image `image` of condition `condition` (a prompt index or class id, 0 when unconditional):
// derive_seed(seed, "sample/x_T", {condition, image}) as int64. The same for every model and world size, so base
// and tuned samples of one (prompt, image) start from the same x_T.
int64_t sample_seed(uint64_t seed, int64_t condition, int64_t image);

struct RowRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// The batches [b·batch, min((b+1)·batch, rows)) with b ≡ rank (mod world), in order.
std::vector<RowRange> batches_of_rank(int64_t rows, int64_t batch_size, int rank, int world);

// Rank r's part file of the output `out` (removed after the merge).
std::string part_path(const std::string& out, int rank, int world);

// parts[r] holds rank r's rows in the order of batches_of_rank(rows, batch_size, r, parts.size()); returns all
// rows in the global order (datasets present in every part; attributes from part 0). Errors name a part whose
// row count does not match the plan.
SamplesFile merge_parts(const std::vector<SamplesFile>& parts, int64_t rows, int64_t batch_size);

}  // namespace dualign::eval
