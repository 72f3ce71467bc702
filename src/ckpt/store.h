// A directory of checkpoints written atomically:
//   1. fill a CheckpointWriter on <dir>/ckpt-<step>.h5.tmp and close it,
//   2. fsync the file, rename it to ckpt-<step>.h5, fsync the directory,
//   3. write latest.tmp (the file name), fsync, rename it to `latest`, fsync the directory,
//   4. delete all but the newest keep_last checkpoints (never the one `latest` names).
// A crash at any point leaves `latest` naming a complete checkpoint (or absent before the first one); stale
// *.tmp files are removed by the next save. ZeRO-style per-rank state goes into shard files
// ckpt-<step>.rank<r>-of-<W>.h5 written the same way by every rank *before* rank 0 saves the main file
// (barrier in between), so `latest` only ever names a step whose shards are all complete.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"

namespace dualign::ckpt {

class CheckpointStore {
 public:
  explicit CheckpointStore(std::string dir, int keep_last = 3);

  using Fill = std::function<void(CheckpointWriter&)>;
  std::string save(int64_t step, const Fill& fill);  // returns the final path; sets the attribute "step"
  std::string save_shard(int64_t step, int rank, int world_size, const Fill& fill);

  // The checkpoint `latest` names (nullopt when there is none yet).
  std::optional<std::string> latest() const;
  std::vector<int64_t> steps() const;  // complete checkpoints on disk, ascending
  std::string path(int64_t step) const;
  std::string shard_path(int64_t step, int rank, int world_size) const;
  const std::string& dir() const { return dir_; }

  // A checkpoint file, or a directory -> the checkpoint its `latest` names.
  static std::string resolve(const std::string& file_or_dir);

 private:
  void write_atomically(const std::string& final_path, const Fill& fill);
  void prune(int64_t keep_step);
  void remove_stale_tmp(int64_t before_step);

  std::string dir_;
  int keep_last_;
};

// fsync helpers (throw dualign::Error naming the path).
void fsync_path(const std::string& path);
void fsync_dir(const std::string& dir);

}  // namespace dualign::ckpt
