#include "data/formats.h"

namespace dualign::data {
namespace {

using h5::DType;

const std::vector<DType> kSampleTypes = {DType::u8, DType::f32, DType::f16};
const std::vector<DType> kFloatTypes = {DType::f32, DType::f64};
const std::vector<DType> kEmbeddingTypes = {DType::f32, DType::f16};

FieldSpec field(std::string name, bool required, std::vector<DType> dtypes, int min_rank, int max_rank,
                Slot slot = Slot::none) {
  FieldSpec f;
  f.name = std::move(name);
  f.required = required;
  f.dtypes = std::move(dtypes);
  f.min_rank = min_rank;
  f.max_rank = max_rank;
  f.slot = slot;
  return f;
}

FieldSpec image(std::string name, Slot slot, std::string same_shape_as = "", int min_rank = 2) {
  FieldSpec f = field(std::move(name), true, kSampleTypes, min_rank, 5, slot);
  f.image = true;
  f.same_shape_as = std::move(same_shape_as);
  return f;
}

// The optional VAE posterior of a latent sample `name` (its mean): log-variance, and the posterior of the
// horizontally flipped image with its log-variance. Same dtype and shape as the mean.
std::vector<FieldSpec> posterior_fields(const std::string& name, Slot logvar, Slot flip, Slot flip_logvar) {
  auto optional = [&](const std::string& suffix, Slot slot) {
    FieldSpec f = field(name + suffix, false, {DType::f32, DType::f16}, 2, 5, slot);
    f.same_shape_as = name;
    return f;
  };
  return {optional("_logvar", logvar), optional("_flip", flip), optional("_flip_logvar", flip_logvar)};
}

// A table with one row per unique caption, indexed by prompt_index, and its empty-prompt row [1, ...].
std::vector<FieldSpec> prompt_table(const std::string& name, int rank, Slot slot, Slot empty_slot) {
  FieldSpec table = field(name, false, kEmbeddingTypes, rank, rank, slot);
  table.per_sample = false;
  table.index_field = "prompt_index";
  FieldSpec empty = field("empty_" + name, false, kEmbeddingTypes, rank, rank, empty_slot);
  empty.per_sample = false;
  empty.same_row_shape_as = name;
  return {table, empty};
}

// What a pair or a labelled sample may be conditioned on. Text comes per sample (text_embedding) or, with one
// embedding per unique caption, from a table indexed by prompt_index; empty_prompt_embedding [1, L, D] is the
// condition of prompt dropout. SDXL shards add the pooled embedding table (prompt_pooled [P, D'],
// empty_prompt_pooled) and each image's size conditioning (time_ids*, [N, 6]: kept, not trained on, since the
// trainer conditions on the recipe's fixed time ids, train/h5_source.cpp).
std::vector<FieldSpec> condition_fields(const std::vector<std::string>& time_ids) {
  std::vector<FieldSpec> out = {field("class_id", false, {DType::i64}, 1, 1, Slot::class_id),
                                field("prompt", false, {DType::string}, 1, 1),
                                field("text_embedding", false, kEmbeddingTypes, 3, 3, Slot::text),
                                field("prompt_index", false, {DType::i64, DType::i32}, 1, 1)};
  for (auto part : {prompt_table("prompt_embedding", 3, Slot::text, Slot::empty_text),
                    prompt_table("prompt_pooled", 2, Slot::text_pooled, Slot::empty_text_pooled)})
    out.insert(out.end(), part.begin(), part.end());
  for (const auto& name : time_ids) out.push_back(field(name, false, {DType::f32}, 2, 2));
  return out;
}

std::vector<FormatSpec> build_table() {
  std::vector<FormatSpec> t;
  t.push_back({"images", "images with class labels (e.g. Fashion-MNIST)",
               {image("images", Slot::x, "", 4), field("labels", true, {DType::i64}, 1, 1, Slot::class_id)}});
  t.push_back({"points", "points with optional labels (2-D toys)",
               {field("points", true, {DType::f32}, 2, 2, Slot::x), field("labels", false, {DType::i64}, 1, 1, Slot::class_id)}});
  t.push_back({"preference_pairs", "winner/loser pairs for DPO, DMPO, hinge and DDO",
               {image("winner", Slot::x), image("loser", Slot::x_l, "winner"),
                field("score_w", false, kFloatTypes, 1, 1, Slot::score_w),
                field("score_l", false, kFloatTypes, 1, 1, Slot::score_l),
                // P(winner preferred) by the human label: 1, or 0.5 for a kept tie (not trained on)
                field("preference", false, kFloatTypes, 1, 1)}});
  t.push_back({"labelled_samples", "unpaired samples labelled desirable or not, for KTO",
               {image("samples", Slot::x), field("desirable", true, {DType::i8, DType::u8}, 1, 1, Slot::desirable),
                field("score", false, kFloatTypes, 1, 1, Slot::score_w)}});
  auto add = [](FormatSpec& format, const std::vector<FieldSpec>& fields) {
    format.fields.insert(format.fields.end(), fields.begin(), fields.end());
  };
  for (auto& f : t) {
    if (f.name == "preference_pairs") {
      add(f, posterior_fields("winner", Slot::x_logvar, Slot::x_flip, Slot::x_flip_logvar));
      add(f, posterior_fields("loser", Slot::x_l_logvar, Slot::x_l_flip, Slot::x_l_flip_logvar));
    }
    if (f.name == "labelled_samples") add(f, posterior_fields("samples", Slot::x_logvar, Slot::x_flip, Slot::x_flip_logvar));
    if (f.name == "preference_pairs") add(f, condition_fields({"time_ids_w", "time_ids_l"}));
    if (f.name == "labelled_samples") add(f, condition_fields({"time_ids"}));
  }
  // Written by `dualign sample`, read by `dualign eval` and the scoring tools: not training data.
  FormatSpec samples{"samples", "generated samples (dualign sample)",
                     {field("samples", true, {DType::f32}, 2, 5), field("class_id", false, {DType::i64}, 1, 1),
                      field("prompt", false, {DType::string}, 1, 1), field("prompt_index", false, {DType::i64}, 1, 1),
                      field("image_index", false, {DType::i64}, 1, 1), field("seed", false, {DType::i64}, 1, 1)},
                     /*trainable=*/false};
  t.push_back(samples);
  // Written by data_tools/encode_prompts.py: the text condition of text-to-image sampling, and the unconditional
  // (empty or negative prompt) embedding of classifier-free guidance, one row for every prompt.
  // SDXL prompt files add the pooled embeddings (pooled_text_embedding [P, D'], negative_pooled_text_embedding).
  FieldSpec negative = field("negative_text_embedding", false, {DType::f32}, 3, 3);
  negative.per_sample = false;
  FieldSpec negative_pooled = field("negative_pooled_text_embedding", false, {DType::f32}, 2, 2);
  negative_pooled.per_sample = false;
  t.push_back({"prompts", "encoded prompts (input of text-conditional sampling)",
               {field("text_embedding", true, {DType::f32}, 3, 3), field("prompt", true, {DType::string}, 1, 1),
                negative, field("pooled_text_embedding", false, {DType::f32}, 2, 2), negative_pooled},
               /*trainable=*/false});
  return t;
}

}  // namespace

const std::vector<FormatSpec>& all_formats() {
  static const std::vector<FormatSpec> table = build_table();
  return table;
}

const FormatSpec* find_format(const std::string& name) {
  for (const auto& f : all_formats())
    if (f.name == name) return &f;
  return nullptr;
}

std::string format_names() {
  std::string out;
  for (const auto& f : all_formats()) out += (out.empty() ? "" : ", ") + f.name;
  return out;
}

const FieldSpec* find_field(const FormatSpec& format, const std::string& name) {
  for (const auto& f : format.fields)
    if (f.name == name) return &f;
  return nullptr;
}

}  // namespace dualign::data
