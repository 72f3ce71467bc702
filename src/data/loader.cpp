#include "data/loader.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "data/h5.h"
#include "data/formats.h"
#include "data/h5_tensor.h"
#include "data/schema.h"
#include "util/background_thread.h"
#include "util/error.h"

namespace dualign::data {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

const at::Tensor& LoadedBatch::operator[](const std::string& field) const {
  auto it = tensors.find(field);
  if (it == tensors.end()) fail("batch has no tensor field '{}'", field);
  return it->second;
}

std::vector<int64_t> Loader::epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle) return order;
  // The stream depends on (seed, epoch) only: never on rank or world size.
  uint64_t state = seed * 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(epoch) + 0x632BE59BD9B4E019ull);
  splitmix64(state);
  for (int64_t i = n - 1; i > 0; --i) {
    // Unbiased enough for n << 2^64 (the modulo bias is < n / 2^64).
    auto j = static_cast<int64_t>(splitmix64(state) % static_cast<uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

std::pair<int64_t, int64_t> Loader::rank_slice(int64_t global_batch, int rank, int world_size) {
  int64_t local = global_batch / world_size;
  return {rank * local, (rank + 1) * local};
}

Loader::Loader(LoaderOptions options, Cursor start) : options_(std::move(options)) {
  auto& o = options_;
  DUALIGN_CHECK(o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size, "loader: rank {} of world size {}",
                o.rank, o.world_size);
  DUALIGN_CHECK(o.global_batch > 0 && o.global_batch % o.world_size == 0,
                "loader for {}: global batch {} must be a positive multiple of the world size {}", o.path,
                o.global_batch, o.world_size);
  std::vector<std::string> paths;
  if (std::filesystem::is_directory(o.path)) {
    for (auto& e : std::filesystem::directory_iterator(o.path))
      if (e.path().extension() == ".h5") paths.push_back(e.path().string());
    std::sort(paths.begin(), paths.end());
    DUALIGN_CHECK(!paths.empty(), "loader: directory {} has no *.h5 files", o.path);
  } else {
    paths.push_back(o.path);
  }
  file_start_.push_back(0);
  for (auto& p : paths) {
    files_.push_back(std::make_unique<h5::File>(h5::File::open(p)));
    auto& file = *files_.back();
    if (fields_.empty()) fields_ = o.fields.empty() ? sample_fields(file) : o.fields;
    DUALIGN_CHECK(!fields_.empty(), "loader: {} has no per-sample datasets", p);
    int64_t rows = -1;
    const FormatSpec* format = find_format(file.try_attr_string("/", "format").value_or(""));
    for (auto& f : fields_) {
      const FieldSpec* spec = format ? find_field(*format, f) : nullptr;
      auto info = file.info(f);  // throws "missing dataset" with the file name
      DUALIGN_CHECK(!info.shape.empty(), "loader: {} is a scalar, expected per-sample rows", file.where(f));
      if (spec && !spec->per_sample) {
        // A table: sample i reads row index[i] of it (e.g. one text embedding per unique caption).
        DUALIGN_CHECK(!spec->index_field.empty(), "loader: {} is a table without a per-sample index; read it whole",
                      file.where(f));
        index_of_[f] = spec->index_field;
      } else {
        if (rows < 0) rows = info.shape[0];
        DUALIGN_CHECK(info.shape[0] == rows, "loader: {} has {} rows, expected {} like /{}", file.where(f),
                      info.shape[0], rows, fields_[0]);
      }
      auto& first = *files_.front();
      auto ref = first.info(f);
      DUALIGN_CHECK(ref.dtype == info.dtype && std::equal(ref.shape.begin() + 1, ref.shape.end(), info.shape.begin() + 1,
                                                          info.shape.end()),
                    "loader: {} is {} {}, but {} is {} {}", file.where(f), h5::dtype_name(info.dtype),
                    info.shape_str(), first.where(f), h5::dtype_name(ref.dtype), ref.shape_str());
      is_string_[f] = info.dtype == h5::DType::string;
      is_image_[f] = spec && spec->image;
    }
    if (rows < 0) rows = file.info(index_of_.begin()->second).shape[0];
    file_start_.push_back(file_start_.back() + rows);
  }
  rows_ = file_start_.back();
  DUALIGN_CHECK(rows_ >= o.global_batch, "loader: {} has {} samples, fewer than one global batch of {}", o.path,
                rows_, o.global_batch);
  consumed_ = normalized(start);
  produce_ = consumed_;
  start_worker();
}

Loader::~Loader() { stop_worker(); }

Cursor Loader::normalized(Cursor c) const {
  DUALIGN_CHECK(c.epoch >= 0 && c.position >= 0, "loader: invalid cursor (epoch {}, position {})", c.epoch, c.position);
  if (c.position + options_.global_batch > rows_) return {c.epoch + 1, 0};
  return c;
}

at::Tensor Loader::read_file_rows(size_t file, const std::string& field, const std::vector<int64_t>& rows) {
  auto index = index_of_.find(field);
  if (index == index_of_.end()) return h5::read_tensor_rows(*files_[file], field, rows);
  at::Tensor table_rows = h5::read_tensor_rows(*files_[file], index->second, rows).to(torch::kLong).contiguous();
  const int64_t* p = table_rows.data_ptr<int64_t>();
  return h5::read_tensor_rows(*files_[file], field, std::vector<int64_t>(p, p + table_rows.numel()));
}

at::Tensor Loader::read_tensor_field(const std::string& field, const std::vector<int64_t>& rows) {
  if (files_.size() == 1) return read_file_rows(0, field, rows);
  // Group the rows by file, read each group, and put the rows back at their batch positions.
  std::vector<std::vector<int64_t>> local(files_.size()), slot(files_.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    size_t f = std::upper_bound(file_start_.begin(), file_start_.end(), rows[i]) - file_start_.begin() - 1;
    local[f].push_back(rows[i] - file_start_[f]);
    slot[f].push_back(static_cast<int64_t>(i));
  }
  at::Tensor out;
  for (size_t f = 0; f < files_.size(); ++f) {
    if (local[f].empty()) continue;
    at::Tensor part = read_file_rows(f, field, local[f]);
    if (!out.defined()) {
      auto shape = part.sizes().vec();
      shape[0] = static_cast<int64_t>(rows.size());
      out = torch::empty(shape, part.options());
    }
    out.index_copy_(0, torch::tensor(slot[f], torch::kLong), part);
  }
  return out;
}

std::vector<std::string> Loader::read_string_field(const std::string& field, const std::vector<int64_t>& rows) {
  std::vector<std::string> out(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    size_t f = std::upper_bound(file_start_.begin(), file_start_.end(), rows[i]) - file_start_.begin() - 1;
    out[i] = files_[f]->read_strings(field, {rows[i] - file_start_[f]})[0];
  }
  return out;
}

LoadedBatch Loader::read_batch(Cursor c) {
  if (order_epoch_ != c.epoch) {
    order_ = epoch_order(rows_, options_.seed, c.epoch, options_.shuffle);
    order_epoch_ = c.epoch;
  }
  auto [lo, hi] = rank_slice(options_.global_batch, options_.rank, options_.world_size);
  LoadedBatch b;
  b.cursor = c;
  b.indices.assign(order_.begin() + c.position + lo, order_.begin() + c.position + hi);
  for (auto& f : fields_) {
    if (is_string_[f]) {
      b.strings[f] = read_string_field(f, b.indices);
      continue;
    }
    at::Tensor t = read_tensor_field(f, b.indices);
    if (options_.images_to_float && is_image_[f] && t.scalar_type() == at::kByte)
      t = t.to(at::kFloat).div_(127.5).sub_(1.0);
    b.tensors[f] = t;
  }
  return b;
}

LoadedBatch Loader::next() {
  LoadedBatch b;
  if (options_.prefetch <= 0) {
    b = read_batch(consumed_);
  } else {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return !queue_.empty() || error_; });
    if (queue_.empty()) std::rethrow_exception(error_);
    b = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
  }
  consumed_ = normalized({b.cursor.epoch, b.cursor.position + options_.global_batch});
  return b;
}

void Loader::seek(Cursor cursor) {
  stop_worker();
  consumed_ = normalized(cursor);
  produce_ = consumed_;
  start_worker();
}

void Loader::start_worker() {
  if (options_.prefetch <= 0) return;
  queue_.clear();
  stop_ = false;
  error_ = nullptr;
  worker_ = std::thread([this] { worker_loop(); });
}

void Loader::stop_worker() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
  queue_.clear();
}

void Loader::worker_loop() {
  make_background_thread_single_threaded();
  while (true) {
    Cursor c;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || static_cast<int>(queue_.size()) < options_.prefetch; });
      if (stop_) return;
      c = produce_;
    }
    try {
      LoadedBatch b = read_batch(c);
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(b));
      produce_ = normalized({c.epoch, c.position + options_.global_batch});
    } catch (...) {
      std::lock_guard lock(mutex_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    cv_.notify_all();
  }
}

}  // namespace dualign::data
