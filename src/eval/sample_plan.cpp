#include "eval/sample_plan.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include "util/error.h"
#include "util/seed.h"

namespace dualign::eval {

int64_t sample_seed(uint64_t seed, int64_t condition, int64_t image) {
  return static_cast<int64_t>(derive_seed(seed, "sample/x_T", {condition, image}));  // 63 bits: fits int64
}

std::vector<RowRange> batches_of_rank(int64_t rows, int64_t batch_size, int rank, int world) {
  DUALIGN_CHECK(batch_size >= 1 && world >= 1 && rank >= 0 && rank < world,
                "batches_of_rank: batch {} rank {} world {}", batch_size, rank, world);
  std::vector<RowRange> out;
  const int64_t batches = (rows + batch_size - 1) / batch_size;
  for (int64_t b = rank; b < batches; b += world) out.push_back({b * batch_size, std::min(rows, (b + 1) * batch_size)});
  return out;
}

std::string part_path(const std::string& out, int rank, int world) {
  return fmt::format("{}.rank{}-of-{}.part", out, rank, world);
}

SamplesFile merge_parts(const std::vector<SamplesFile>& parts, int64_t rows, int64_t batch_size) {
  DUALIGN_CHECK(!parts.empty(), "merge_parts: no parts");
  const int world = int(parts.size());
  SamplesFile out;
  out.text_attrs = parts[0].text_attrs;
  out.int_attrs = parts[0].int_attrs;
  out.float_attrs = parts[0].float_attrs;
  // global row of every row of every part
  std::vector<torch::Tensor> index;
  for (int r = 0; r < world; ++r) {
    std::vector<int64_t> idx;
    for (const auto& b : batches_of_rank(rows, batch_size, r, world))
      for (int64_t i = b.begin; i < b.end; ++i) idx.push_back(i);
    const int64_t have = parts[size_t(r)].samples.defined() ? parts[size_t(r)].samples.size(0) : 0;
    DUALIGN_CHECK(have == int64_t(idx.size()), "part of rank {} of {} holds {} samples, the plan gives it {}", r, world,
                  have, idx.size());
    index.push_back(torch::tensor(idx, torch::kInt64));
  }
  // Scatters one tensor field of the parts (present in all of them, or in none) into the global order.
  auto merge = [&](auto field) -> torch::Tensor {
    std::vector<torch::Tensor> pieces;
    for (const auto& p : parts)
      if (field(p).defined() && field(p).size(0) > 0) pieces.push_back(field(p));
    if (pieces.empty()) return {};
    auto shape = pieces[0].sizes().vec();
    shape[0] = rows;
    auto all = torch::empty(shape, pieces[0].options());
    for (int r = 0; r < world; ++r) {
      const auto& t = field(parts[size_t(r)]);
      if (index[size_t(r)].numel() == 0) continue;
      DUALIGN_CHECK(t.defined(), "part of rank {} lacks a dataset the other parts have", r);
      all.index_copy_(0, index[size_t(r)], t);
    }
    return all;
  };
  out.samples = merge([](const SamplesFile& p) -> const torch::Tensor& { return p.samples; });
  out.class_id = merge([](const SamplesFile& p) -> const torch::Tensor& { return p.class_id; });
  out.prompt_index = merge([](const SamplesFile& p) -> const torch::Tensor& { return p.prompt_index; });
  out.image_index = merge([](const SamplesFile& p) -> const torch::Tensor& { return p.image_index; });
  out.seed = merge([](const SamplesFile& p) -> const torch::Tensor& { return p.seed; });
  if (!parts[0].prompts.empty()) {
    out.prompts.assign(size_t(rows), "");
    for (int r = 0; r < world; ++r) {
      const auto& p = parts[size_t(r)];
      DUALIGN_CHECK(int64_t(p.prompts.size()) == index[size_t(r)].numel(), "part of rank {}: {} prompts for {} rows", r,
                    p.prompts.size(), index[size_t(r)].numel());
      const auto* idx = index[size_t(r)].data_ptr<int64_t>();
      for (size_t i = 0; i < p.prompts.size(); ++i) out.prompts[size_t(idx[i])] = p.prompts[i];
    }
  }
  return out;
}

}  // namespace dualign::eval
