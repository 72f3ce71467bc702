// Every dataset format dualign reads or writes, declared once: its fields with their dtypes and ranks (what
// `dualign data validate` checks), which fields hold images (uint8 0..255, read as float [-1, 1]), and which
// part of a training data::Batch each field fills. A new format is one entry in formats.cpp; the validator, the
// loader and the trainer's HDF5 source all read this table (and src/data/README.md documents it).
#pragma once
#include <string>
#include <vector>

#include "data/h5.h"

namespace dualign::data {

// Where a field goes in a training Batch (none: validated and kept, but not trained on). The *_logvar and *_flip
// slots hold a latent's VAE posterior: x is its mean, x_logvar its log-variance, x_flip the posterior of the
// horizontally flipped image (the trainer's data path draws from them, train/h5_source.h). empty_text is the
// embedding of the empty prompt (prompt dropout); text_pooled and empty_text_pooled the pooled embeddings of SDXL's
// second text encoder.
enum class Slot {
  none, x, x_l, x_logvar, x_l_logvar, x_flip, x_l_flip, x_flip_logvar, x_l_flip_logvar,
  score_w, score_l, desirable, class_id, text, empty_text, text_pooled, empty_text_pooled
};

struct FieldSpec {
  std::string name;
  bool required = false;
  std::vector<h5::DType> dtypes;
  int min_rank = 1, max_rank = 1;  // all dimensions, N included
  std::string same_shape_as;       // another field whose dtype and shape must match exactly
  std::string same_row_shape_as;   // another field whose dimensions after the first must match
  Slot slot = Slot::none;
  bool image = false;              // uint8 pixels (or float samples in [-1, 1]): rescaled on load when uint8
  bool per_sample = true;          // first dimension is N; false: a table with its own number of rows
  std::string index_field;         // a table's per-sample field of row numbers: sample i reads row index[i]
};

struct FormatSpec {
  std::string name;
  std::string summary;
  std::vector<FieldSpec> fields;
  bool trainable = true;  // the trainer can read it (`data.kind: h5`)
};

// Every format, in documentation order.
const std::vector<FormatSpec>& all_formats();
// The format called `name`, or nullptr.
const FormatSpec* find_format(const std::string& name);
// "images, points, ..." for messages.
std::string format_names();
// The spec of `field` in `format`, or nullptr.
const FieldSpec* find_field(const FormatSpec& format, const std::string& field);

}  // namespace dualign::data
