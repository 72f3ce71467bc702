#include "data/loader.h"

#include <torch/torch.h>

#include <numeric>

#include "data/h5.h"
#include "data/h5_tensor.h"
#include "data/schema.h"
#include "util/error.h"

namespace dualign::data {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool is_image_field(const std::string& name) {
  return name == "images" || name == "winner" || name == "loser" || name == "samples";
}

}  // namespace

const at::Tensor& Batch::operator[](const std::string& field) const {
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
  file_ = std::make_unique<h5::File>(h5::File::open(o.path));
  fields_ = o.fields.empty() ? sample_fields(*file_) : o.fields;
  DUALIGN_CHECK(!fields_.empty(), "loader: {} has no per-sample datasets", o.path);
  rows_ = -1;
  for (auto& f : fields_) {
    auto info = file_->info(f);  // throws "missing dataset" with the file name
    DUALIGN_CHECK(!info.shape.empty(), "loader: {} is a scalar, expected per-sample rows", file_->where(f));
    if (rows_ < 0) rows_ = info.shape[0];
    DUALIGN_CHECK(info.shape[0] == rows_, "loader: {} has {} rows, expected {} like /{}", file_->where(f),
                  info.shape[0], rows_, fields_[0]);
  }
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

Batch Loader::read_batch(Cursor c) {
  if (order_epoch_ != c.epoch) {
    order_ = epoch_order(rows_, options_.seed, c.epoch, options_.shuffle);
    order_epoch_ = c.epoch;
  }
  auto [lo, hi] = rank_slice(options_.global_batch, options_.rank, options_.world_size);
  Batch b;
  b.cursor = c;
  b.indices.assign(order_.begin() + c.position + lo, order_.begin() + c.position + hi);
  for (auto& f : fields_) {
    if (file_->info(f).dtype == h5::DType::string) {
      b.strings[f] = file_->read_strings(f, b.indices);
      continue;
    }
    at::Tensor t = h5::read_tensor_rows(*file_, f, b.indices);
    if (options_.images_to_float && is_image_field(f) && t.scalar_type() == at::kByte)
      t = t.to(at::kFloat).div_(127.5).sub_(1.0);
    b.tensors[f] = t;
  }
  return b;
}

Batch Loader::next() {
  Batch b;
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
  while (true) {
    Cursor c;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || static_cast<int>(queue_.size()) < options_.prefetch; });
      if (stop_) return;
      c = produce_;
    }
    try {
      Batch b = read_batch(c);
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
