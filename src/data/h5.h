// A small RAII wrapper over the HDF5 C API. Every HDF5 call is checked by DUALIGN_H5, which turns a failure
// into a dualign::Error naming the file, the dataset or attribute, the innermost HDF5 message and the source
// line. HDF5's own error-stack printing is silenced. Torch-free: tensor helpers are in data/h5_tensor.h.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/error.h"

namespace dualign::h5 {

// The innermost message of HDF5's current error stack ("" if none).
std::string last_error_message();

// Throws when an HDF5 call returned a negative id/status. `what` names the file and the object.
[[noreturn]] void raise(const std::string& what, const char* call, const char* file, int line);

}  // namespace dualign::h5

// DUALIGN_H5(call, "context {}", args...): evaluates call; negative result -> dualign::Error.
#define DUALIGN_H5(call, ...)                                                                      \
  ([&]() {                                                                                         \
    auto _h5_result = (call);                                                                      \
    if (_h5_result < 0) ::dualign::h5::raise(::fmt::format(__VA_ARGS__), #call, __FILE__, __LINE__); \
    return _h5_result;                                                                             \
  }())

namespace dualign::h5 {

// Owns one hid_t and closes it with the right H5*close function.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept { *this = std::move(other); }
  Handle& operator=(Handle&& other) noexcept;
  ~Handle() { reset(); }
  void reset();
  hid_t release() {  // gives up ownership without closing
    hid_t id = id_;
    id_ = -1;
    return id;
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// Element types a dataset or attribute can hold. `other` = anything else (compound, enum, ...).
enum class DType { f32, f64, f16, u8, i8, i16, i32, i64, u16, string, other };
const char* dtype_name(DType t);
size_t dtype_size(DType t);  // bytes per element (0 for string/other)

struct DatasetInfo {
  DType dtype = DType::other;
  std::vector<int64_t> shape;
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  int64_t row_elements() const;  // product of shape[1:]
  std::string shape_str() const;  // "[60000, 1, 28, 28]"
};

struct WriteOptions {
  int64_t chunk_rows = 0;   // 0: pick automatically (~1 MiB chunks); chunking is needed for compression
  int gzip_level = 0;       // 0: no compression; 1-9 deflate (with the shuffle filter)
};

enum class Mode { read, read_write };

class File {
 public:
  static File open(const std::string& path, Mode mode = Mode::read);
  static File create(const std::string& path);  // truncates an existing file
  File() = default;

  const std::string& path() const { return path_; }
  hid_t id() const { return file_.get(); }
  bool is_open() const { return file_.valid(); }
  void flush();
  void close();

  // Objects. Names are HDF5 paths ("images", "model/conv.weight"); intermediate groups are created on write.
  bool exists(const std::string& name) const;
  bool is_group(const std::string& name) const;
  std::vector<std::string> list(const std::string& group = "/") const;  // link names, sorted
  void create_group(const std::string& name);
  DatasetInfo info(const std::string& name) const;

  // Datasets of numbers: `data` is row-major with shape `shape`.
  void write(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* data,
             const WriteOptions& options = {});
  // Reads the whole dataset, converting to `dtype` (HDF5 converts between numeric types).
  void read(const std::string& name, DType dtype, void* out) const;
  // Reads rows [row0, row0 + count) along dimension 0.
  void read_rows(const std::string& name, DType dtype, int64_t row0, int64_t count, void* out) const;
  // Reads the listed rows (any order) into `out` in that order; contiguous runs are read in one call.
  void read_rows(const std::string& name, DType dtype, const std::vector<int64_t>& rows, void* out) const;

  // 1-D datasets of variable-length UTF-8 strings (h5py: h5py.string_dtype()). Fixed-length ones read too.
  void write_strings(const std::string& name, const std::vector<std::string>& values);
  std::vector<std::string> read_strings(const std::string& name) const;
  std::vector<std::string> read_strings(const std::string& name, const std::vector<int64_t>& rows) const;

  // Scalar attributes on an object ("/" = the file's root).
  void set_attr(const std::string& object, const std::string& key, const std::string& value);
  void set_attr(const std::string& object, const std::string& key, const char* value) {
    set_attr(object, key, std::string(value));
  }
  void set_attr(const std::string& object, const std::string& key, int64_t value);
  void set_attr(const std::string& object, const std::string& key, double value);
  bool has_attr(const std::string& object, const std::string& key) const;
  std::vector<std::string> attr_names(const std::string& object) const;
  std::string attr_string(const std::string& object, const std::string& key) const;
  int64_t attr_int(const std::string& object, const std::string& key) const;
  double attr_double(const std::string& object, const std::string& key) const;
  std::optional<std::string> try_attr_string(const std::string& object, const std::string& key) const;

  // "file.h5:/dataset" for error messages.
  std::string where(const std::string& name) const { return path_ + ":/" + strip_root(name); }

 private:
  static std::string strip_root(const std::string& name);
  hid_t open_dataset(const std::string& name) const;  // borrowed id, owned by open_datasets_
  Handle open_object(const std::string& name) const;
  void ensure_parent_groups(const std::string& name);
  std::string path_;
  Handle file_;
  // Datasets stay open between reads so HDF5's chunk cache survives (random row reads hit it).
  mutable std::vector<std::pair<std::string, Handle>> open_datasets_;
};

// Maps C++ types to DType for the typed helpers below.
template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }
template <> constexpr DType dtype_of<int8_t>() { return DType::i8; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }

template <typename T>
std::vector<T> read_vector(const File& file, const std::string& name) {
  auto info = file.info(name);
  std::vector<T> out(static_cast<size_t>(info.rows() * info.row_elements()));
  file.read(name, dtype_of<T>(), out.data());
  return out;
}

template <typename T>
void write_vector(File& file, const std::string& name, const std::vector<T>& values, const WriteOptions& options = {}) {
  file.write(name, dtype_of<T>(), {static_cast<int64_t>(values.size())}, values.data(), options);
}

}  // namespace dualign::h5
