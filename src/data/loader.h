// Sharded, resumable, prefetching loader over a dualign HDF5 dataset.
//
// The global sample order is independent of the number of ranks: epoch e visits the permutation
// epoch_order(N, seed, e); global batch b of the epoch is order[b*G, (b+1)*G) and rank r of W reads only its
// contiguous slice [r*G/W, (r+1)*G/W) of it. A Cursor {epoch, position} (position = samples of the epoch
// already consumed) is all a checkpoint needs: resuming from it continues the same global order at any world
// size that divides G. The tail N mod G of each epoch is dropped (a different tail each epoch).
#pragma once
#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dualign::h5 {
class File;
}

namespace dualign::data {

struct Cursor {
  int64_t epoch = 0;
  int64_t position = 0;  // index into the epoch's global order of the next sample to consume
  bool operator==(const Cursor&) const = default;
};

struct LoaderOptions {
  // One dataset file, or a directory whose *.h5 files (sorted by name, e.g. pickapic-00000.h5 ...) form one
  // dataset: global sample ids run through the files in that order.
  std::string path;
  int64_t global_batch = 64;  // G, summed over ranks; must be divisible by world_size
  int rank = 0;
  int world_size = 1;
  uint64_t seed = 0;
  bool shuffle = true;
  // Datasets to read; empty = every per-sample dataset of the format. A table with an index field (formats.h,
  // e.g. prompt_embedding by prompt_index) comes back per sample: row i is table[index[i]].
  std::vector<std::string> fields;
  int prefetch = 2;                 // batches a background thread prepares ahead (0 = read inside next())
  bool images_to_float = false;     // uint8 images/winner/loser/samples -> float32 in [-1, 1]
};

struct LoadedBatch {
  std::map<std::string, at::Tensor> tensors;               // field -> [G/W, ...] (CPU)
  std::map<std::string, std::vector<std::string>> strings;  // string fields (e.g. prompt)
  std::vector<int64_t> indices;                            // global sample ids of this rank's rows
  Cursor cursor;                                           // where this global batch starts
  const at::Tensor& operator[](const std::string& field) const;
};

class Loader {
 public:
  explicit Loader(LoaderOptions options, Cursor start = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  LoadedBatch next();
  Cursor cursor() const { return consumed_; }  // where the next next() starts: store this in checkpoints
  void seek(Cursor cursor);                    // restart from a saved cursor (drops prefetched batches)
  // The cursor of the k-th global batch since epoch 0 (k = step * grad_accum + micro for a trainer that never
  // changes G): lets a step-indexed trainer derive the cursor from the step instead of storing it.
  Cursor cursor_of_batch(int64_t k) const { return {k / batches_per_epoch(), (k % batches_per_epoch()) * options_.global_batch}; }

  int64_t size() const { return rows_; }
  int64_t batches_per_epoch() const { return rows_ / options_.global_batch; }
  int64_t local_batch() const { return options_.global_batch / options_.world_size; }
  const std::vector<std::string>& fields() const { return fields_; }

  // The deterministic order of epoch `epoch` (a permutation of 0..n-1, or the identity without shuffle).
  static std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle = true);
  // Rank r's rows [begin, end) within a global batch of size G.
  static std::pair<int64_t, int64_t> rank_slice(int64_t global_batch, int rank, int world_size);

 private:
  Cursor normalized(Cursor c) const;  // wraps a position past the last full batch to the next epoch
  LoadedBatch read_batch(Cursor c);
  void start_worker();
  void stop_worker();
  void worker_loop();

  // Reads the given global rows of one field from whichever files hold them, in the requested order.
  at::Tensor read_tensor_field(const std::string& field, const std::vector<int64_t>& rows);
  // Rows of one file; a table field is read at the rows its index field names for those samples.
  at::Tensor read_file_rows(size_t file, const std::string& field, const std::vector<int64_t>& rows);
  std::vector<std::string> read_string_field(const std::string& field, const std::vector<int64_t>& rows);

  LoaderOptions options_;
  std::vector<std::unique_ptr<h5::File>> files_;
  std::vector<int64_t> file_start_;  // global id of each file's first row; back() = total rows
  std::vector<std::string> fields_;
  std::map<std::string, bool> is_string_;
  std::map<std::string, bool> is_image_;  // uint8 pixels per the format table (formats.h)
  std::map<std::string, std::string> index_of_;  // table field -> its per-sample index field
  int64_t rows_ = 0;
  Cursor consumed_;  // cursor after the last batch handed out
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;

  // Prefetch state (guarded by mutex_).
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<LoadedBatch> queue_;
  Cursor produce_;  // next batch the worker will read
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace dualign::data
