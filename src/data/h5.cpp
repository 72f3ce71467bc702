#include "data/h5.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

namespace dualign::h5 {
namespace {

// HDF5 keeps one error stack (and its auto-print setting) per thread in a thread-safe build: silence it in
// every thread that touches a file.
void silence_errors() {
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
}

herr_t innermost_message(unsigned n, const H5E_error2_t* err, void* out) {
  if (n == 0 && err->desc) *static_cast<std::string*>(out) = err->desc;
  return 0;
}

// IEEE 754 binary16, little-endian: HDF5 1.10 predefines no half type, so it is built once from the float32
// type (h5py writes numpy float16 with the same layout). HDF5 converts it to and from float32/float64.
hid_t half_type() {
  static const hid_t type = [] {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    bool ok = t >= 0 && H5Tset_fields(t, 15, 10, 5, 0, 10) >= 0 && H5Tset_size(t, 2) >= 0 &&
              H5Tset_ebias(t, 15) >= 0 && H5Tset_precision(t, 16) >= 0;
    if (!ok) fail("HDF5: cannot build the float16 type ({})", last_error_message());
    return t;
  }();
  return type;
}

hid_t native_type(DType t) {
  switch (t) {
    case DType::f16: return half_type();
    case DType::f32: return H5T_NATIVE_FLOAT;
    case DType::f64: return H5T_NATIVE_DOUBLE;
    case DType::u8: return H5T_NATIVE_UINT8;
    case DType::i8: return H5T_NATIVE_INT8;
    case DType::i16: return H5T_NATIVE_INT16;
    case DType::i32: return H5T_NATIVE_INT32;
    case DType::i64: return H5T_NATIVE_INT64;
    case DType::u16: return H5T_NATIVE_UINT16;
    default: fail("HDF5: no native type for dtype {}", dtype_name(t));
  }
}

// Little-endian file types so files are identical on every machine.
hid_t file_type(DType t) {
  switch (t) {
    case DType::f16: return half_type();
    case DType::f32: return H5T_IEEE_F32LE;
    case DType::f64: return H5T_IEEE_F64LE;
    case DType::u8: return H5T_STD_U8LE;
    case DType::i8: return H5T_STD_I8LE;
    case DType::i16: return H5T_STD_I16LE;
    case DType::i32: return H5T_STD_I32LE;
    case DType::i64: return H5T_STD_I64LE;
    case DType::u16: return H5T_STD_U16LE;
    default: fail("HDF5: cannot store dtype {}", dtype_name(t));
  }
}

DType classify(hid_t type) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  if (cls == H5T_STRING) return DType::string;
  if (cls == H5T_FLOAT) return size == 4 ? DType::f32 : size == 8 ? DType::f64 : size == 2 ? DType::f16 : DType::other;
  if (cls == H5T_INTEGER) {
    bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    switch (size) {
      case 1: return is_signed ? DType::i8 : DType::u8;
      case 2: return is_signed ? DType::i16 : DType::u16;
      case 4: return is_signed ? DType::i32 : DType::other;
      case 8: return is_signed ? DType::i64 : DType::other;
    }
  }
  // h5py stores numpy bool as an int8 enum {FALSE, TRUE}.
  if (cls == H5T_ENUM && size == 1) return DType::i8;
  return DType::other;
}

Handle vlen_string_type() {
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  DUALIGN_H5(H5Tset_size(t.get(), H5T_VARIABLE), "string type");
  DUALIGN_H5(H5Tset_cset(t.get(), H5T_CSET_UTF8), "string type");
  return t;
}

// Reads string data whose file type is `ftype` (variable or fixed length) from a selection of n values.
std::vector<std::string> read_string_values(hid_t obj, bool is_attribute, hid_t ftype, hid_t mspace, hid_t fspace,
                                            size_t n, const std::string& where) {
  std::vector<std::string> out(n);
  if (H5Tis_variable_str(ftype) > 0) {
    auto mtype = vlen_string_type();
    std::vector<char*> ptrs(n, nullptr);
    if (is_attribute)
      DUALIGN_H5(H5Aread(obj, mtype.get(), ptrs.data()), "reading strings {}", where);
    else
      DUALIGN_H5(H5Dread(obj, mtype.get(), mspace, fspace, H5P_DEFAULT, ptrs.data()), "reading strings {}", where);
    for (size_t i = 0; i < n; ++i) out[i] = ptrs[i] ? ptrs[i] : "";
    Handle space(H5Screate_simple(1, std::vector<hsize_t>{static_cast<hsize_t>(n)}.data(), nullptr), H5Sclose);
    H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, ptrs.data());
    return out;
  }
  size_t len = H5Tget_size(ftype);
  Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose);
  DUALIGN_H5(H5Tset_size(mtype.get(), len), "string type");
  std::vector<char> buf(len * n);
  if (is_attribute)
    DUALIGN_H5(H5Aread(obj, mtype.get(), buf.data()), "reading strings {}", where);
  else
    DUALIGN_H5(H5Dread(obj, mtype.get(), mspace, fspace, H5P_DEFAULT, buf.data()), "reading strings {}", where);
  for (size_t i = 0; i < n; ++i) {
    const char* s = buf.data() + i * len;
    out[i] = std::string(s, strnlen(s, len));
  }
  return out;
}

std::vector<hsize_t> to_hsize(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

}  // namespace

std::string last_error_message() {
  std::string message;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_message, &message);
  return message;
}

void raise(const std::string& what, const char* call, const char* file, int line) {
  std::string detail = last_error_message();
  H5Eclear2(H5E_DEFAULT);
  throw Error(fmt::format("HDF5 error: {}{}{} [{} at {}:{}]", what, detail.empty() ? "" : ": ", detail, call,
                          file, line));
}

// ---- Handle -------------------------------------------------------------------------------------------------
Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_) closer_(id_);
  id_ = -1;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::f16: return "float16";
    case DType::u8: return "uint8";
    case DType::i8: return "int8";
    case DType::i16: return "int16";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::u16: return "uint16";
    case DType::string: return "string";
    default: return "unsupported";
  }
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f64: case DType::i64: return 8;
    case DType::f32: case DType::i32: return 4;
    case DType::f16: case DType::i16: case DType::u16: return 2;
    case DType::u8: case DType::i8: return 1;
    default: return 0;
  }
}

int64_t DatasetInfo::row_elements() const {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

std::string DatasetInfo::shape_str() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// ---- File ---------------------------------------------------------------------------------------------------
File File::open(const std::string& path, Mode mode) {
  silence_errors();
  File f;
  f.path_ = path;
  if (!std::filesystem::exists(path)) fail("{}: no such file", path);
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    std::string detail = last_error_message();
    H5Eclear2(H5E_DEFAULT);
    fail("HDF5 error: cannot open {}: not an HDF5 file or truncated/corrupted{}{}", path,
         detail.empty() ? "" : ": ", detail);
  }
  unsigned flags = mode == Mode::read ? H5F_ACC_RDONLY : H5F_ACC_RDWR;
  f.file_ = Handle(DUALIGN_H5(H5Fopen(path.c_str(), flags, H5P_DEFAULT), "opening {}", path), H5Fclose);
  return f;
}

File File::create(const std::string& path) {
  silence_errors();
  File f;
  f.path_ = path;
  f.file_ = Handle(DUALIGN_H5(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "creating {}", path),
                   H5Fclose);
  return f;
}

void File::flush() { DUALIGN_H5(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), "flushing {}", path_); }

void File::close() {
  open_datasets_.clear();
  if (!file_.valid()) return;
  // Close through the checked call so a failing final write (disk full) is reported, not swallowed.
  hid_t id = file_.release();
  DUALIGN_H5(H5Fclose(id), "closing {}", path_);
}

std::string File::strip_root(const std::string& name) {
  size_t i = 0;
  while (i < name.size() && name[i] == '/') ++i;
  return name.substr(i);
}

bool File::exists(const std::string& name) const {
  silence_errors();
  std::string path = strip_root(name);
  if (path.empty()) return true;
  // Check each prefix: H5Lexists fails (not false) when an intermediate group is missing.
  size_t pos = 0;
  while (true) {
    pos = path.find('/', pos);
    std::string prefix = path.substr(0, pos);
    if (H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
    ++pos;
  }
}

bool File::is_group(const std::string& name) const {
  if (!exists(name)) return false;
  H5O_info_t info;
  DUALIGN_H5(H5Oget_info_by_name(file_.get(), ("/" + strip_root(name)).c_str(), &info, H5P_DEFAULT), "inspecting {}",
             where(name));
  return info.type == H5O_TYPE_GROUP;
}

std::vector<std::string> File::list(const std::string& group) const {
  auto g = open_object(group);
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->push_back(name);
    return 0;
  };
  DUALIGN_H5(H5Literate(g.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect, &names), "listing {}", where(group));
  std::sort(names.begin(), names.end());
  return names;
}

void File::ensure_parent_groups(const std::string& name) {
  std::string path = strip_root(name);
  size_t pos = 0;
  while ((pos = path.find('/', pos)) != std::string::npos) {
    std::string prefix = path.substr(0, pos);
    if (!exists(prefix))
      Handle(DUALIGN_H5(H5Gcreate2(file_.get(), prefix.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                        "creating group {}", where(prefix)),
             H5Gclose);
    ++pos;
  }
}

void File::create_group(const std::string& name) {
  if (exists(name)) return;
  ensure_parent_groups(name);
  Handle(DUALIGN_H5(H5Gcreate2(file_.get(), strip_root(name).c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                    "creating group {}", where(name)),
         H5Gclose);
}

Handle File::open_object(const std::string& name) const {
  silence_errors();
  DUALIGN_CHECK(file_.valid(), "HDF5: {} is not open", path_);
  if (!exists(name)) fail("{}: no object /{} in the file", path_, strip_root(name));
  std::string path = "/" + strip_root(name);
  return Handle(DUALIGN_H5(H5Oopen(file_.get(), path.c_str(), H5P_DEFAULT), "opening {}", where(name)), H5Oclose);
}

hid_t File::open_dataset(const std::string& name) const {
  silence_errors();
  DUALIGN_CHECK(file_.valid(), "HDF5: {} is not open", path_);
  std::string key = strip_root(name);
  for (auto& [k, h] : open_datasets_)
    if (k == key) return h.get();
  if (!exists(key)) fail("{}: missing dataset /{}", path_, key);
  // A 64 MiB chunk cache per dataset: random row reads (the loader) decompress each chunk once.
  Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  DUALIGN_H5(H5Pset_chunk_cache(dapl.get(), 12421, 64u << 20, 1.0), "chunk cache for {}", where(name));
  Handle d(DUALIGN_H5(H5Dopen2(file_.get(), key.c_str(), dapl.get()), "opening dataset {}", where(name)), H5Dclose);
  open_datasets_.emplace_back(key, std::move(d));
  return open_datasets_.back().second.get();
}

DatasetInfo File::info(const std::string& name) const {
  hid_t d = open_dataset(name);
  Handle type(DUALIGN_H5(H5Dget_type(d), "type of {}", where(name)), H5Tclose);
  Handle space(DUALIGN_H5(H5Dget_space(d), "shape of {}", where(name)), H5Sclose);
  int rank = DUALIGN_H5(H5Sget_simple_extent_ndims(space.get()), "rank of {}", where(name));
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  DUALIGN_H5(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "shape of {}", where(name));
  DatasetInfo info;
  info.dtype = classify(type.get());
  info.shape.assign(dims.begin(), dims.end());
  return info;
}

void File::write(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* data,
                 const WriteOptions& options) {
  silence_errors();
  ensure_parent_groups(name);
  auto dims = to_hsize(shape);
  Handle space(DUALIGN_H5(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "shape for {}",
                          where(name)),
               H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  int64_t total = 1;
  for (auto d : shape) total *= d;
  bool chunked = (options.gzip_level > 0 || options.chunk_rows > 0) && !shape.empty() && total > 0;
  if (chunked) {
    int64_t row_bytes = static_cast<int64_t>(dtype_size(dtype));
    for (size_t i = 1; i < shape.size(); ++i) row_bytes *= shape[i];
    int64_t rows = options.chunk_rows > 0 ? options.chunk_rows : std::max<int64_t>(1, (1 << 20) / std::max<int64_t>(row_bytes, 1));
    std::vector<hsize_t> chunk = dims;
    chunk[0] = static_cast<hsize_t>(std::min(rows, shape[0]));
    DUALIGN_H5(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), "chunking {}", where(name));
    if (options.gzip_level > 0) {
      DUALIGN_H5(H5Pset_shuffle(dcpl.get()), "shuffle filter for {}", where(name));
      DUALIGN_H5(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(options.gzip_level)), "gzip for {}", where(name));
      // A checksum per chunk: corruption is reported as an error instead of returning garbage.
      DUALIGN_H5(H5Pset_fletcher32(dcpl.get()), "checksum for {}", where(name));
    }
  }
  std::string key = strip_root(name);
  Handle d(DUALIGN_H5(H5Dcreate2(file_.get(), key.c_str(), file_type(dtype), space.get(), H5P_DEFAULT, dcpl.get(),
                                 H5P_DEFAULT),
                      "creating dataset {}", where(name)),
           H5Dclose);
  if (total > 0)
    DUALIGN_H5(H5Dwrite(d.get(), native_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "writing {}", where(name));
}

void File::read(const std::string& name, DType dtype, void* out) const {
  hid_t d = open_dataset(name);
  auto inf = info(name);
  if (inf.rows() * inf.row_elements() == 0) return;
  DUALIGN_H5(H5Dread(d, native_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out), "reading {}", where(name));
}

void File::read_rows(const std::string& name, DType dtype, int64_t row0, int64_t count, void* out) const {
  hid_t d = open_dataset(name);
  auto shape = info(name).shape;
  DUALIGN_CHECK(!shape.empty(), "{}: cannot read rows of a scalar dataset", where(name));
  if (row0 < 0 || count < 0 || row0 + count > shape[0])
    fail("{}: rows [{}, {}) out of range (dataset has {} rows)", where(name), row0, row0 + count, shape[0]);
  if (count == 0) return;
  Handle fspace(DUALIGN_H5(H5Dget_space(d), "{}", where(name)), H5Sclose);
  std::vector<hsize_t> start(shape.size(), 0), cnt = to_hsize(shape);
  start[0] = static_cast<hsize_t>(row0);
  cnt[0] = static_cast<hsize_t>(count);
  DUALIGN_H5(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr),
             "selecting rows of {}", where(name));
  Handle mspace(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr), H5Sclose);
  DUALIGN_H5(H5Dread(d, native_type(dtype), mspace.get(), fspace.get(), H5P_DEFAULT, out),
             "reading rows [{}, {}) of {}", row0, row0 + count, where(name));
}

void File::read_rows(const std::string& name, DType dtype, const std::vector<int64_t>& rows, void* out) const {
  hid_t d = open_dataset(name);
  auto inf = info(name);
  DUALIGN_CHECK(!inf.shape.empty(), "{}: cannot read rows of a scalar dataset", where(name));
  for (int64_t r : rows)
    if (r < 0 || r >= inf.shape[0]) fail("{}: row {} out of range (dataset has {} rows)", where(name), r, inf.shape[0]);
  size_t row_bytes = dtype_size(dtype) * static_cast<size_t>(inf.row_elements());
  // Sort the requested rows, read each contiguous run with one H5Dread (one file space reused; the chunk cache
  // makes repeated chunks cheap), then scatter the rows into the requested order.
  std::vector<size_t> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a] < rows[b]; });
  Handle fspace(DUALIGN_H5(H5Dget_space(d), "{}", where(name)), H5Sclose);
  std::vector<hsize_t> start(inf.shape.size(), 0), cnt = to_hsize(inf.shape);
  std::vector<char> run;
  size_t i = 0;
  while (i < order.size()) {
    size_t j = i + 1;
    while (j < order.size() && rows[order[j]] == rows[order[j - 1]] + 1) ++j;
    start[0] = static_cast<hsize_t>(rows[order[i]]);
    cnt[0] = static_cast<hsize_t>(j - i);
    run.resize(row_bytes * (j - i));
    DUALIGN_H5(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr),
               "selecting rows of {}", where(name));
    Handle mspace(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr), H5Sclose);
    DUALIGN_H5(H5Dread(d, native_type(dtype), mspace.get(), fspace.get(), H5P_DEFAULT, run.data()),
               "reading rows [{}, {}) of {}", start[0], start[0] + cnt[0], where(name));
    for (size_t k = i; k < j; ++k)
      std::memcpy(static_cast<char*>(out) + order[k] * row_bytes, run.data() + (k - i) * row_bytes, row_bytes);
    i = j;
  }
}

void File::write_strings(const std::string& name, const std::vector<std::string>& values) {
  silence_errors();
  ensure_parent_groups(name);
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  auto type = vlen_string_type();
  Handle d(DUALIGN_H5(H5Dcreate2(file_.get(), strip_root(name).c_str(), type.get(), space.get(), H5P_DEFAULT,
                                 H5P_DEFAULT, H5P_DEFAULT),
                      "creating string dataset {}", where(name)),
           H5Dclose);
  std::vector<const char*> ptrs;
  for (auto& v : values) ptrs.push_back(v.c_str());
  if (n > 0)
    DUALIGN_H5(H5Dwrite(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "writing {}", where(name));
}

std::vector<std::string> File::read_strings(const std::string& name) const {
  hid_t d = open_dataset(name);
  auto inf = info(name);
  DUALIGN_CHECK(inf.dtype == DType::string && inf.shape.size() <= 1, "{}: expected a 1-D string dataset, found {} {}",
                where(name), dtype_name(inf.dtype), inf.shape_str());
  Handle ftype(H5Dget_type(d), H5Tclose);
  return read_string_values(d, false, ftype.get(), H5S_ALL, H5S_ALL, static_cast<size_t>(inf.rows()),
                            where(name));
}

std::vector<std::string> File::read_strings(const std::string& name, const std::vector<int64_t>& rows) const {
  hid_t d = open_dataset(name);
  auto inf = info(name);
  DUALIGN_CHECK(inf.dtype == DType::string && inf.shape.size() == 1, "{}: expected a 1-D string dataset, found {} {}",
                where(name), dtype_name(inf.dtype), inf.shape_str());
  Handle ftype(H5Dget_type(d), H5Tclose);
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (int64_t r : rows) {
    if (r < 0 || r >= inf.rows()) fail("{}: row {} out of range ({} rows)", where(name), r, inf.rows());
    Handle fspace(H5Dget_space(d), H5Sclose);
    hsize_t start = static_cast<hsize_t>(r), one = 1;
    DUALIGN_H5(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &start, nullptr, &one, nullptr), "{}", where(name));
    Handle mspace(H5Screate_simple(1, &one, nullptr), H5Sclose);
    out.push_back(read_string_values(d, false, ftype.get(), mspace.get(), fspace.get(), 1, where(name))[0]);
  }
  return out;
}

// ---- attributes -----------------------------------------------------------------------------------------------
namespace {
void write_attr(hid_t obj, const std::string& key, hid_t ftype, hid_t mtype, const void* value,
                const std::string& where) {
  if (H5Aexists(obj, key.c_str()) > 0) DUALIGN_H5(H5Adelete(obj, key.c_str()), "replacing attribute {}", where);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(DUALIGN_H5(H5Acreate2(obj, key.c_str(), ftype, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                      "creating attribute {}", where),
           H5Aclose);
  DUALIGN_H5(H5Awrite(a.get(), mtype, value), "writing attribute {}", where);
}
}  // namespace

void File::set_attr(const std::string& object, const std::string& key, const std::string& value) {
  auto obj = open_object(object);
  auto type = vlen_string_type();
  const char* p = value.c_str();
  write_attr(obj.get(), key, type.get(), type.get(), &p, where(object) + "@" + key);
}

void File::set_attr(const std::string& object, const std::string& key, int64_t value) {
  auto obj = open_object(object);
  write_attr(obj.get(), key, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, where(object) + "@" + key);
}

void File::set_attr(const std::string& object, const std::string& key, double value) {
  auto obj = open_object(object);
  write_attr(obj.get(), key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, where(object) + "@" + key);
}

bool File::has_attr(const std::string& object, const std::string& key) const {
  if (!exists(object)) return false;
  auto obj = open_object(object);
  return H5Aexists(obj.get(), key.c_str()) > 0;
}

std::vector<std::string> File::attr_names(const std::string& object) const {
  auto obj = open_object(object);
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->push_back(name);
    return 0;
  };
  DUALIGN_H5(H5Aiterate2(obj.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect, &names), "attributes of {}",
             where(object));
  return names;
}

namespace {
struct OpenAttr {
  Handle attr, type;
  DType dtype;
};
OpenAttr open_attr(hid_t obj, const std::string& key, const std::string& where) {
  if (H5Aexists(obj, key.c_str()) <= 0) fail("{}: missing attribute '{}'", where, key);
  OpenAttr a;
  a.attr = Handle(DUALIGN_H5(H5Aopen(obj, key.c_str(), H5P_DEFAULT), "opening attribute {}@{}", where, key), H5Aclose);
  a.type = Handle(H5Aget_type(a.attr.get()), H5Tclose);
  a.dtype = classify(a.type.get());
  Handle space(H5Aget_space(a.attr.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1) fail("{}: attribute '{}' is not a scalar", where, key);
  return a;
}
}  // namespace

std::string File::attr_string(const std::string& object, const std::string& key) const {
  auto obj = open_object(object);
  auto a = open_attr(obj.get(), key, where(object));
  if (a.dtype != DType::string)
    fail("{}: attribute '{}' should be a string, found {}", where(object), key, dtype_name(a.dtype));
  return read_string_values(a.attr.get(), true, a.type.get(), H5S_ALL, H5S_ALL, 1, where(object) + "@" + key)[0];
}

std::optional<std::string> File::try_attr_string(const std::string& object, const std::string& key) const {
  if (!has_attr(object, key)) return std::nullopt;
  return attr_string(object, key);
}

int64_t File::attr_int(const std::string& object, const std::string& key) const {
  auto obj = open_object(object);
  auto a = open_attr(obj.get(), key, where(object));
  if (a.dtype == DType::string || a.dtype == DType::other || a.dtype == DType::f32 || a.dtype == DType::f64)
    fail("{}: attribute '{}' should be an integer, found {}", where(object), key, dtype_name(a.dtype));
  int64_t v = 0;
  DUALIGN_H5(H5Aread(a.attr.get(), H5T_NATIVE_INT64, &v), "reading attribute {}@{}", where(object), key);
  return v;
}

double File::attr_double(const std::string& object, const std::string& key) const {
  auto obj = open_object(object);
  auto a = open_attr(obj.get(), key, where(object));
  if (a.dtype == DType::string || a.dtype == DType::other)
    fail("{}: attribute '{}' should be a number, found {}", where(object), key, dtype_name(a.dtype));
  double v = 0;
  DUALIGN_H5(H5Aread(a.attr.get(), H5T_NATIVE_DOUBLE, &v), "reading attribute {}@{}", where(object), key);
  return v;
}

}  // namespace dualign::h5
