#include "data/schema.h"

#include "data/formats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace dualign::data {
namespace {

using h5::DType;

std::string names_of(const std::vector<DType>& types) {
  std::string out;
  for (auto t : types) out += (out.empty() ? "" : " or ") + std::string(h5::dtype_name(t));
  return out;
}

// Reads a numeric dataset block by block as float64 (corrupted chunks fail here) and returns [min, max];
// non-finite values are an error.
std::pair<double, double> scan_values(const h5::File& file, const std::string& name, const h5::DatasetInfo& info) {
  int64_t rows = info.shape.empty() ? 1 : info.rows();
  int64_t per_row = std::max<int64_t>(info.row_elements(), 1);
  int64_t block = std::max<int64_t>(1, (1 << 21) / per_row);
  std::vector<double> buf;
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t r = 0; r < rows; r += block) {
    int64_t n = std::min(block, rows - r);
    buf.resize(static_cast<size_t>(n * per_row));
    if (info.shape.empty())
      file.read(name, DType::f64, buf.data());
    else
      file.read_rows(name, DType::f64, r, n, buf.data());
    for (size_t i = 0; i < buf.size(); ++i) {
      double v = buf[i];
      if (!std::isfinite(v))
        fail("{}: non-finite value {} at row {}", file.where(name), v, r + static_cast<int64_t>(i) / per_row);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  return {lo, hi};
}

// A Batch slot is filled by at most one dataset of the file; a table comes with its index field and the index
// with its table; the empty-prompt embedding is one row.
void check_slots_and_tables(const h5::File& file, const FormatSpec& format,
                            const std::map<std::string, h5::DatasetInfo>& found) {
  std::map<Slot, std::string> filled;
  for (auto& spec : format.fields) {
    if (!found.count(spec.name)) continue;
    if (spec.slot != Slot::none && filled.count(spec.slot))
      fail("{}: /{} and /{} are both present, expected one of them", file.path(), filled[spec.slot], spec.name);
    if (spec.slot != Slot::none) filled[spec.slot] = spec.name;
    if (!spec.index_field.empty() && !found.count(spec.index_field))
      fail("{}: table /{} needs /{} (its row of each sample)", file.path(), spec.name, spec.index_field);
    if ((spec.slot == Slot::empty_text || spec.slot == Slot::empty_text_pooled) && found.at(spec.name).shape[0] != 1)
      fail("{}: shape {}, expected one row", file.where(spec.name), found.at(spec.name).shape_str());
  }
  // An index needs at least one of its tables (the text and SDXL's pooled embeddings share prompt_index), and the
  // tables that share it have the same rows (one per caption).
  std::map<std::string, std::string> first_table;
  for (auto& spec : format.fields) {
    if (spec.index_field.empty() || !found.count(spec.name)) continue;
    auto [first, inserted] = first_table.emplace(spec.index_field, spec.name);
    if (!inserted && found.at(spec.name).shape[0] != found.at(first->second).shape[0])
      fail("{}: /{} has {} rows but /{} has {} (both are indexed by /{})", file.path(), spec.name,
           found.at(spec.name).shape[0], first->second, found.at(first->second).shape[0], spec.index_field);
  }
  for (auto& spec : format.fields)
    if (!spec.index_field.empty() && found.count(spec.index_field) && !first_table.count(spec.index_field))
      fail("{}: /{} indexes rows of /{}, which is missing", file.path(), spec.index_field, spec.name);
}

}  // namespace

void write_format_attrs(h5::File& file, const std::string& format) {
  DUALIGN_CHECK(find_format(format), "unknown dataset format '{}' (known: {})", format, format_names());
  file.set_attr("/", "format", format);
  file.set_attr("/", "version", kFormatVersion);
}

std::vector<std::string> sample_fields(const h5::File& file) {
  std::string format = file.attr_string("/", "format");
  const FormatSpec* spec = find_format(format);
  if (!spec) fail("{}: unknown format '{}' (known: {})", file.path(), format, format_names());
  std::vector<std::string> out;
  for (auto& f : spec->fields)
    if (f.per_sample && file.exists(f.name)) out.push_back(f.name);
  return out;
}

Summary validate(const std::string& path, const std::string& expected_format, bool read_data) {
  auto file = h5::File::open(path);
  Summary s;
  s.path = path;
  for (auto* key : {"format", "version"})
    if (!file.has_attr("/", key)) fail("{}: missing root attribute '{}' (not a dualign dataset?)", path, key);
  s.format = file.attr_string("/", "format");
  s.version = file.attr_int("/", "version");
  const FormatSpec* format = find_format(s.format);
  if (!format) fail("{}: unknown format '{}' (known: {})", path, s.format, format_names());
  if (!expected_format.empty() && s.format != expected_format)
    fail("{}: format is '{}', expected '{}'", path, s.format, expected_format);
  if (s.version != kFormatVersion) fail("{}: format version {} is not supported (expected {})", path, s.version, kFormatVersion);

  std::map<std::string, h5::DatasetInfo> found;
  s.rows = -1;
  std::string rows_from;
  for (auto& spec : format->fields) {
    if (!file.exists(spec.name)) {
      if (spec.required) fail("{}: missing dataset /{} required by format '{}'", path, spec.name, s.format);
      continue;
    }
    if (file.is_group(spec.name)) fail("{}: /{} is a group, expected a dataset", path, spec.name);
    auto info = file.info(spec.name);
    if (std::find(spec.dtypes.begin(), spec.dtypes.end(), info.dtype) == spec.dtypes.end())
      fail("{}: dtype {}, expected {}", file.where(spec.name), h5::dtype_name(info.dtype), names_of(spec.dtypes));
    int rank = static_cast<int>(info.shape.size());
    if (rank < spec.min_rank || rank > spec.max_rank)
      fail("{}: shape {} has {} dimensions, expected {}{}", file.where(spec.name), info.shape_str(), rank,
           spec.min_rank, spec.max_rank != spec.min_rank ? fmt::format(" to {}", spec.max_rank) : "");
    if (!spec.per_sample) {
      // a table indexed by another field: its own row count
    } else if (s.rows < 0) {
      s.rows = info.shape[0];
      rows_from = spec.name;
    } else if (info.shape[0] != s.rows) {
      fail("{}: shape {} has {} rows but /{} has {}", file.where(spec.name), info.shape_str(), info.shape[0],
           rows_from, s.rows);
    }
    if (!spec.same_row_shape_as.empty() && found.count(spec.same_row_shape_as)) {
      auto& other = found.at(spec.same_row_shape_as);
      if (!std::equal(other.shape.begin() + 1, other.shape.end(), info.shape.begin() + 1, info.shape.end()))
        fail("{}: shape {} differs from /{} {} after the first dimension", file.where(spec.name), info.shape_str(),
             spec.same_row_shape_as, other.shape_str());
    }
    if (!spec.same_shape_as.empty()) {
      auto& other = found.at(spec.same_shape_as);
      if (other.shape != info.shape || other.dtype != info.dtype)
        fail("{}: {} {} differs from /{} {} {}", file.where(spec.name), h5::dtype_name(info.dtype), info.shape_str(),
             spec.same_shape_as, h5::dtype_name(other.dtype), other.shape_str());
    }
    found[spec.name] = info;
    s.datasets.push_back({spec.name, h5::dtype_name(info.dtype), info.shape_str(), true});
  }
  if (s.rows == 0) fail("{}: /{} has no rows", path, rows_from);
  check_slots_and_tables(file, *format, found);

  // Value checks: reading everything also surfaces corrupted chunks (a deflate error names the dataset).
  std::map<std::string, std::string> index_of;  // index field -> the table it indexes
  for (auto& spec : format->fields)
    if (!spec.index_field.empty() && found.count(spec.name)) index_of.emplace(spec.index_field, spec.name);
  for (auto& [name, info] : found) {
    if (info.dtype == DType::string) {
      if (read_data) file.read_strings(name);
      continue;
    }
    if (!read_data && name != "labels" && name != "class_id" && name != "desirable" && !index_of.count(name)) continue;
    auto [lo, hi] = scan_values(file, name, info);
    if (name == "labels" || name == "class_id") {
      if (lo < 0) fail("{}: negative class id {}", file.where(name), lo);
      if (file.has_attr("/", "num_classes")) {
        int64_t k = file.attr_int("/", "num_classes");
        if (hi >= static_cast<double>(k)) fail("{}: class id {} >= num_classes {}", file.where(name), hi, k);
      }
      s.notes.push_back(fmt::format("{}: ids {}..{}", name, lo, hi));
    } else if (index_of.count(name)) {
      int64_t rows = found.at(index_of.at(name)).shape[0];
      if (lo < 0 || hi >= static_cast<double>(rows))
        fail("{}: row numbers must lie in [0, {}) (the rows of /{}), found range [{}, {}]", file.where(name), rows,
             index_of.at(name), lo, hi);
    } else if (name == "desirable") {
      if (lo < 0 || hi > 1) fail("{}: values must be 0 or 1, found range [{}, {}]", file.where(name), lo, hi);
    } else if (name == "preference") {
      if (lo < 0 || hi > 1) fail("{}: values must lie in [0, 1], found range [{}, {}]", file.where(name), lo, hi);
    } else if (info.dtype != DType::u8) {
      s.notes.push_back(fmt::format("{}: values in [{:.4g}, {:.4g}]", name, lo, hi));
    }
  }
  if (s.format == "preference_pairs" && !found.count("class_id") && !found.count("prompt") &&
      !found.count("text_embedding"))
    s.notes.push_back("unconditional pairs (no class_id, prompt or text_embedding)");

  for (auto& name : file.list("/"))
    if (!found.count(name)) s.datasets.push_back({name, "-", "-", false});
  return s;
}

std::string Summary::str() const {
  std::string out = fmt::format("{}\n  format {} (version {}), {} rows\n", path, format, version, rows);
  for (auto& d : datasets)
    out += d.known ? fmt::format("  /{:<16} {:<8} {}\n", d.name, d.dtype, d.shape)
                   : fmt::format("  /{:<16} (not in the schema, ignored)\n", d.name);
  for (auto& n : notes) out += "  " + n + "\n";
  return out;
}

}  // namespace dualign::data
