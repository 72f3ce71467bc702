#include "train/zero_reshard.h"

#include <torch/torch.h>

#include <filesystem>

#include "ckpt/checkpoint.h"
#include "ckpt/store.h"
#include "dist/reshard.h"
#include "util/error.h"

namespace dualign::train {
namespace {

constexpr const char* kShardTensors[] = {"master", "exp_avg", "exp_avg_sq"};

std::string shard_file(const std::string& checkpoint, int64_t step, int rank, int world) {
  const auto dir = std::filesystem::path(checkpoint).parent_path().string();
  return ckpt::CheckpointStore(dir).shard_path(step, rank, world);
}

ckpt::TensorMap read_shard_group(const std::string& path, const std::string& checkpoint) {
  if (!std::filesystem::exists(path))
    fail("checkpoint {}: its ZeRO optimizer shard {} is missing (every rank writes one before the main file)",
         checkpoint, path);
  auto group = ckpt::CheckpointReader(path).group("optimizer_shard");
  for (const char* key : {"master", "exp_avg", "exp_avg_sq", "step"})
    if (!group.count(key)) fail("ZeRO shard checkpoint {}: tensor 'optimizer_shard/{}' is missing", path, key);
  return group;
}

}  // namespace

ZeroShard read_zero_shard(const std::string& checkpoint, int64_t step, int saved_world, int64_t num_params, int rank,
                          int world) {
  ZeroShard out;
  // Same world size, or re-sharded for this size before. Decided from all ranks' files, so every rank agrees.
  bool direct = true;
  for (int r = 0; r < world; ++r) direct = direct && std::filesystem::exists(shard_file(checkpoint, step, r, world));
  if (direct) {
    out.source = shard_file(checkpoint, step, rank, world);
    out.tensors = read_shard_group(out.source, checkpoint);
    return out;
  }
  DUALIGN_CHECK(saved_world >= 1, "checkpoint {}: attribute world_size is {}", checkpoint, saved_world);
  const auto saved = dist::make_shard_layout({num_params}, saved_world);
  const auto now = dist::make_shard_layout({num_params}, world);
  auto options = torch::TensorOptions().dtype(torch::kFloat32);
  for (const char* key : kShardTensors) out.tensors[key] = torch::zeros({now.shard}, options);
  std::map<int, ckpt::TensorMap> opened;  // saved rank -> its shard tensors
  for (const auto& piece : dist::reshard_pieces(saved, now, rank)) {
    if (!opened.count(piece.src_rank)) {
      const auto path = shard_file(checkpoint, step, piece.src_rank, saved_world);
      auto group = read_shard_group(path, checkpoint);
      for (const char* key : kShardTensors)
        if (group.at(key).numel() != saved.shard)
          fail("ZeRO shard checkpoint {}: 'optimizer_shard/{}' has {} elements; {} parameters over {} ranks make "
               "shards of {} (was it written for another model?)",
               path, key, group.at(key).numel(), num_params, saved_world, saved.shard);
      if (out.tensors.count("step") && out.tensors.at("step").item<int64_t>() != group.at("step").item<int64_t>())
        fail("ZeRO shard checkpoint {}: optimizer step {} differs from the other shards' {}", path,
             group.at("step").item<int64_t>(), out.tensors.at("step").item<int64_t>());
      out.tensors["step"] = group.at("step");
      out.source += (out.source.empty() ? "" : ", ") + path;
      opened.emplace(piece.src_rank, std::move(group));
    }
    for (const char* key : kShardTensors)
      out.tensors.at(key)
          .narrow(0, piece.dst_offset, piece.length)
          .copy_(opened.at(piece.src_rank).at(key).reshape({-1}).narrow(0, piece.src_offset, piece.length));
  }
  if (!out.tensors.count("step"))  // a rank whose shard is all padding still needs the step count
    out.tensors["step"] = read_shard_group(shard_file(checkpoint, step, 0, saved_world), checkpoint).at("step");
  out.resharded = true;
  return out;
}

}  // namespace dualign::train
