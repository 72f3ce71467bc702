#include "train/h5_source.h"

#include <algorithm>
#include <filesystem>

#include "config/config.h"
#include "data/formats.h"
#include "data/loader.h"
#include "data/schema.h"
#include "util/error.h"
#include "util/seed.h"

namespace dualign::train {
namespace {

// The first shard of a dataset directory, or the file itself: enough to learn the format and the fields.
std::string first_file(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) return path;
  std::vector<std::string> shards;
  for (const auto& e : fs::directory_iterator(path))
    if (e.path().extension() == ".h5") shards.push_back(e.path().string());
  DUALIGN_CHECK(!shards.empty(), "dataset directory '{}' holds no *.h5 files", path);
  std::sort(shards.begin(), shards.end());
  return shards.front();
}

struct Layout {
  std::string x, x_l, score_w, score_l, desirable, class_id, text;
  std::string group;  // the class labels again, as Batch::group (mixture composition over classes)
};

// Which dataset fills which part of a Batch, from the format table (data/formats.h).
Layout layout_of(const std::string& format, const std::string& condition, const std::string& file,
                 const std::string& key) {
  const data::FormatSpec* spec = data::find_format(format);
  if (!spec || !spec->trainable) fail("dataset '{}' has format '{}', which the trainer cannot read", file, format);
  Layout l;
  for (const auto& f : spec->fields) {
    switch (f.slot) {
      case data::Slot::x: l.x = f.name; break;
      case data::Slot::x_l: l.x_l = f.name; break;
      case data::Slot::score_w: l.score_w = f.name; break;
      case data::Slot::score_l: l.score_l = f.name; break;
      case data::Slot::desirable: l.desirable = f.name; break;
      case data::Slot::class_id: l.class_id = f.name; break;
      case data::Slot::text: l.text = f.name; break;
      case data::Slot::none: break;
    }
  }
  l.group = l.class_id;
  if (condition != "class") l.class_id.clear();
  if (condition != "text") l.text.clear();
  DUALIGN_CHECK(condition == "none" || !(condition == "class" ? l.class_id : l.text).empty(),
                "config key '{}': format '{}' of '{}' has no {} condition", key, format, file, condition);
  return l;
}

// data.label_dropout: each row's class id becomes the null class with probability p, drawn for the global
// micro-batch from (batch seed, "data/label_dropout") and sliced, so any world size drops the same rows. This
// trains the unconditional branch that classifier-free guidance samples with.
struct LabelDropout {
  double p = 0;
  int64_t null_class = -1;
};

class H5Source : public DataSource {
 public:
  H5Source(data::LoaderOptions options, Layout layout, ShardSpec shard, LabelDropout dropout)
      : layout_(std::move(layout)), shard_(shard), loader_(std::move(options)), dropout_(dropout) {}

  data::Batch next(int64_t step, int64_t micro) override {
    const int64_t k = step * shard_.grad_accum + micro;
    if (k != next_k_) loader_.seek(loader_.cursor_of_batch(k));  // a resume or a jump: continue the global order
    next_k_ = k + 1;
    data::LoadedBatch raw = loader_.next();

    data::Batch b = shard_.identity(step, micro);
    auto field = [&](const std::string& name, torch::ScalarType dtype) -> torch::Tensor {
      if (name.empty() || !raw.tensors.count(name)) return {};
      return raw.tensors.at(name).to(shard_.device, dtype);
    };
    b.x = field(layout_.x, torch::kFloat32);
    b.x_l = field(layout_.x_l, torch::kFloat32);
    b.score_w = field(layout_.score_w, torch::kFloat32);
    b.score_l = field(layout_.score_l, torch::kFloat32);
    b.desirable = field(layout_.desirable, torch::kFloat32);
    b.cond.class_id = field(layout_.class_id, torch::kInt64);
    b.cond.text = field(layout_.text, torch::kFloat32);
    b.group = field(layout_.group, torch::kInt64);
    if (dropout_.p > 0) b.cond.class_id = drop_labels(b, raw.tensors.at(layout_.class_id));
    return b;
  }

 private:
  torch::Tensor drop_labels(const data::Batch& b, const torch::Tensor& labels_cpu) const {
    DUALIGN_CHECK(labels_cpu.numel() == 0 || labels_cpu.max().item<int64_t>() < dropout_.null_class,
                  "data.label_dropout: class id {} in the dataset is not below data.null_class = {}",
                  labels_cpu.max().item<int64_t>(), dropout_.null_class);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(b.seed, "data/label_dropout"));
    auto u = at::rand({b.global_size}, gen, torch::kFloat64).narrow(0, b.offset, b.local_size());
    auto drop = (u < dropout_.p).to(shard_.device);
    return torch::where(drop, torch::full_like(b.cond.class_id, dropout_.null_class), b.cond.class_id);
  }

  Layout layout_;
  ShardSpec shard_;
  data::Loader loader_;
  LabelDropout dropout_;
  int64_t next_k_ = -1;
};

}  // namespace

std::unique_ptr<DataSource> make_h5_source(const config::Section& data, const ShardSpec& shard) {
  const auto path = data.get<std::string>("path");
  const auto condition = data.get<std::string>("condition", "none");
  const bool shuffle = data.get<bool>("shuffle", true);
  const int prefetch = static_cast<int>(data.get<int64_t>("prefetch", 2));
  // `group: class` hands the labels to the method as group ids (Batch::group) whatever the condition.
  const auto group = data.get<std::string>("group", "none");
  LabelDropout dropout{data.get<double>("label_dropout", 0.0), data.get<int64_t>("null_class", -1)};
  data.finish({"kind"});
  DUALIGN_CHECK(dropout.p >= 0 && dropout.p < 1, "config key '{}': expected a probability in [0, 1), got {}",
                data.path("label_dropout"), dropout.p);
  DUALIGN_CHECK(dropout.p == 0 || (condition == "class" && dropout.null_class >= 0),
                "config key '{}' needs data.condition: class and data.null_class (the model's null label: the UNet's "
                "num_class_embeds - 1, the MLP's num_classes)", data.path("label_dropout"));
  DUALIGN_CHECK(group == "none" || group == "class", "config key '{}': expected none or class, got '{}'",
                data.path("group"), group);
  DUALIGN_CHECK(condition == "none" || condition == "class" || condition == "text",
                "config key '{}': expected none, class or text, got '{}'", data.path("condition"), condition);
  DUALIGN_CHECK(std::filesystem::exists(path), "config key '{}': dataset '{}' does not exist", data.path("path"),
                path);
  const auto file = first_file(path);
  const auto summary = data::validate(file, "", /*read_data=*/false);
  Layout layout = layout_of(summary.format, condition, file, data.path("condition"));
  if (group == "none") layout.group.clear();

  data::LoaderOptions o;
  o.path = path;
  o.global_batch = shard.global_micro_batch;
  o.rank = shard.rank;
  o.world_size = shard.world_size;
  o.seed = derive_seed(shard.seed, "data/order");
  o.shuffle = shuffle;
  o.prefetch = prefetch;
  o.images_to_float = true;
  for (const auto* f : {&layout.x, &layout.x_l, &layout.score_w, &layout.score_l, &layout.desirable,
                        &layout.class_id, &layout.text, &layout.group}) {
    if (f->empty()) continue;
    bool present = false;
    for (const auto& d : summary.datasets) present |= d.name == *f;
    if (present && std::find(o.fields.begin(), o.fields.end(), *f) == o.fields.end()) o.fields.push_back(*f);
  }
  DUALIGN_CHECK(layout.group.empty() || std::find(o.fields.begin(), o.fields.end(), layout.group) != o.fields.end(),
                "config key '{}': dataset '{}' has no '{}' to group by", data.path("group"), file, layout.group);
  DUALIGN_CHECK(summary.rows >= shard.global_micro_batch || std::filesystem::is_directory(path),
                "dataset '{}' has {} samples, fewer than one global micro-batch of {}", path, summary.rows,
                shard.global_micro_batch);
  return std::make_unique<H5Source>(std::move(o), std::move(layout), shard, dropout);
}

}  // namespace dualign::train
