// One training micro-batch as methods see it, and the condition of each sample. Shared by data sources, models,
// rewards and methods, so it lives with the data. A Batch is this rank's slice [offset, offset + local) of the
// global micro-batch of `global_size` samples. Random draws that must not depend on the number of ranks (noise,
// timesteps) are made for the global micro-batch and sliced (see draw_global).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>

namespace dualign::data {

// What a sample is conditioned on; every part is optional (undefined = not conditioned on it).
struct Condition {
  torch::Tensor class_id;     // [B] int64
  torch::Tensor text;         // [B, L, D] text-encoder hidden states
  torch::Tensor text_pooled;  // [B, D] pooled text embedding (SDXL's added conditioning)
  torch::Tensor time_ids;     // [B, K] SDXL's micro-conditioning: original size, crop top-left, target size

  // The condition of rows [start, start + length).
  Condition slice(int64_t start, int64_t length) const;
  // This condition stacked `times` times along the batch (e.g. for winner and loser in one forward).
  Condition repeat(int64_t times) const;
  Condition to(const torch::Device& device) const;
  // The rows `rows` (int64 [N]) of this condition, in that order.
  Condition select(const torch::Tensor& rows) const;
  // a's rows then b's (e.g. [unconditional; conditional] for guidance); both must condition on the same parts.
  static Condition concat(const Condition& a, const Condition& b);
  // Applies `fn` to every defined part.
  Condition map(const std::function<torch::Tensor(const torch::Tensor&)>& fn) const;
};

struct Batch {
  torch::Tensor x;          // [local, ...] samples (SFT, KTO), or the preferred sample of each pair
  torch::Tensor x_l;        // [local, ...] the rejected sample of each pair (pair methods), else undefined
  Condition cond;           // class ids and/or text embeddings of each row (shared by winner and loser)
  Condition uncond;         // each row's unconditional branch for classifier-free guidance, when the source knows it
                            // (text datasets that store the empty prompt's embeddings), else undefined parts
  torch::Tensor score_w;    // [local] reward of x (pairs: the winner), if the dataset has it
  torch::Tensor score_l;    // [local] reward of the loser, if known
  torch::Tensor desirable;  // [local] 1/0 labels of unpaired samples (KTO), else undefined
  torch::Tensor group;      // [local] int64 dataset/group id of each row (mixture composition), else undefined
  int64_t offset = 0;    // first global index of this rank's slice
  int64_t global_size = 0;
  int64_t step = 0, micro = 0;
  uint64_t seed = 0;     // base seed of this (step, micro): derive per-purpose streams from it

  int64_t local_size() const { return x.size(0); }
};

// Draws N(0,1) (or U{0..high-1} when high > 0) for the whole global micro-batch from the stream
// (batch.seed, purpose) and returns this rank's slice: identical numbers whatever the world size.
torch::Tensor draw_global_normal(const Batch& batch, const char* purpose, torch::IntArrayRef sample_shape,
                                 const torch::Device& device);
torch::Tensor draw_global_int(const Batch& batch, const char* purpose, int64_t high, const torch::Device& device);

}  // namespace dualign::data
