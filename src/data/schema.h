// Validation of dataset files against their format (the table of formats is data/formats.h, documented in
// src/data/README.md). Every dataset file carries root attributes `format` and `version`; per-sample datasets
// share their first dimension N.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/h5.h"

namespace dualign::data {

inline constexpr int64_t kFormatVersion = 1;

// Marks a file as holding `format` (sets the root attributes format and version).
void write_format_attrs(h5::File& file, const std::string& format);

struct DatasetSummary {
  std::string name, dtype, shape;
  bool known = true;  // false: not part of the schema (kept, but ignored by the loader)
};

struct Summary {
  std::string path, format;
  int64_t version = 0, rows = 0;
  std::vector<DatasetSummary> datasets;
  std::vector<std::string> notes;  // e.g. "labels: 10 classes"
  std::string str() const;         // human-readable, several lines
};

// Checks `path` against its schema: root attributes, required datasets, dtypes, ranks, equal first
// dimensions, winner/loser shapes, value ranges of labels; with `read_data` every value is also read (finds
// corrupted chunks and non-finite floats). Throws dualign::Error naming the file and dataset on any problem.
// `expected_format` (if not empty) must match the file's format.
Summary validate(const std::string& path, const std::string& expected_format = "", bool read_data = true);

// The per-sample dataset names of a format that exist in `file` (what the loader reads by default).
std::vector<std::string> sample_fields(const h5::File& file);

}  // namespace dualign::data
