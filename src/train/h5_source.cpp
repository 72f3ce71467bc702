#include "train/h5_source.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>

#include "config/config.h"
#include "data/formats.h"
#include "data/h5.h"
#include "data/h5_tensor.h"
#include "data/latent_augment.h"
#include "data/loader.h"
#include "data/schema.h"
#include "util/error.h"
#include "util/seed.h"

namespace dualign::train {
namespace {

using data::Slot;

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

// Which dataset of the file fills which part of a Batch, from the format table (data/formats.h).
struct Layout {
  std::map<Slot, std::string> fields;  // only datasets the file has
  std::string group;                   // the class labels again, as Batch::group (mixture composition over classes)
  std::string of(Slot slot) const {
    auto it = fields.find(slot);
    return it == fields.end() ? "" : it->second;
  }
};

Layout layout_of(const data::Summary& summary, const std::string& condition, const std::string& file,
                 const std::string& key) {
  const data::FormatSpec* spec = data::find_format(summary.format);
  if (!spec || !spec->trainable)
    fail("dataset '{}' has format '{}', which the trainer cannot read", file, summary.format);
  Layout l;
  for (const auto& f : spec->fields) {
    bool present = false;
    for (const auto& d : summary.datasets) present |= d.name == f.name;
    if (present && f.slot != Slot::none) l.fields[f.slot] = f.name;
  }
  l.group = l.of(Slot::class_id);
  if (condition != "class") l.fields.erase(Slot::class_id);
  if (condition != "text")
    for (Slot s : {Slot::text, Slot::empty_text, Slot::text_pooled, Slot::empty_text_pooled}) l.fields.erase(s);
  DUALIGN_CHECK(condition == "none" || !l.of(condition == "class" ? Slot::class_id : Slot::text).empty(),
                "config key '{}': format '{}' of '{}' has no {} condition", key, summary.format, file, condition);
  return l;
}

// The recipe's per-step draws (data/latent_augment.h); all off for datasets without posteriors.
struct Augment {
  double flip_probability = 0;        // data.flip_probability: the flipped image's posterior at this rate
  bool sample_posterior = false;      // data.sample_posterior: z = mean + std · ε instead of the mean
  double empty_prompt_probability = 0;  // data.proportion_empty_prompts
};

// data.label_dropout: each row's class id becomes the null class with probability p, drawn for the global
// micro-batch from (batch seed, "data/label_dropout") and sliced, so any world size drops the same rows. This
// trains the unconditional branch that classifier-free guidance samples with.
struct LabelDropout {
  double p = 0;
  int64_t null_class = -1;
};

// What every row is conditioned on besides its own datasets: the empty prompt's embeddings (prompt dropout) and
// SDXL's size conditioning, the same for every image.
struct SharedCondition {
  torch::Tensor empty_text;         // [1, L, D] on the device, when the shards store it
  torch::Tensor empty_text_pooled;  // [1, D'] (SDXL), when the shards store it
  torch::Tensor time_ids;           // [1, 6] (SDXL)
};

class H5Source : public DataSource {
 public:
  H5Source(data::LoaderOptions options, Layout layout, Augment augment, SharedCondition shared, ShardSpec shard,
           LabelDropout dropout)
      : layout_(std::move(layout)), augment_(augment), shared_(std::move(shared)), shard_(shard),
        loader_(std::move(options)), dropout_(dropout) {}

  data::Batch next(int64_t step, int64_t micro) override {
    const int64_t k = step * shard_.grad_accum + micro;
    if (k != next_k_) loader_.seek(loader_.cursor_of_batch(k));  // a resume or a jump: continue the global order
    next_k_ = k + 1;
    data::LoadedBatch raw = loader_.next();

    data::Batch b = shard_.identity(step, micro);
    auto field = [&](Slot slot, torch::ScalarType dtype) -> torch::Tensor {
      auto name = layout_.of(slot);
      if (name.empty() || !raw.tensors.count(name)) return {};
      return raw.tensors.at(name).to(shard_.device, dtype);
    };
    auto posterior = [&](Slot mean, Slot logvar, Slot flip, Slot flip_logvar) {
      return data::LatentPosterior{field(mean, torch::kFloat32), field(logvar, torch::kFloat32),
                                   field(flip, torch::kFloat32), field(flip_logvar, torch::kFloat32)};
    };
    auto x = posterior(Slot::x, Slot::x_logvar, Slot::x_flip, Slot::x_flip_logvar);
    b.x = x.mean;  // gives the batch its local size, which the global draws below slice by
    b.x = latent(x, b, "data/flip/x", "data/posterior/x");
    if (!layout_.of(Slot::x_l).empty())
      b.x_l = latent(posterior(Slot::x_l, Slot::x_l_logvar, Slot::x_l_flip, Slot::x_l_flip_logvar), b,
                     "data/flip/x_l", "data/posterior/x_l");
    b.score_w = field(Slot::score_w, torch::kFloat32);
    b.score_l = field(Slot::score_l, torch::kFloat32);
    b.desirable = field(Slot::desirable, torch::kFloat32);
    b.cond.class_id = field(Slot::class_id, torch::kInt64);
    b.cond.text = field(Slot::text, torch::kFloat32);
    b.cond.text_pooled = field(Slot::text_pooled, torch::kFloat32);
    if (augment_.empty_prompt_probability > 0) {  // the same rows (one draw) for the hidden states and the pooled
      b.cond.text = data::drop_prompts(b.cond.text, shared_.empty_text, augment_.empty_prompt_probability, b,
                                       "data/empty_prompt");
      if (b.cond.text_pooled.defined())
        b.cond.text_pooled = data::drop_prompts(b.cond.text_pooled, shared_.empty_text_pooled,
                                                augment_.empty_prompt_probability, b, "data/empty_prompt");
    }
    if (shared_.time_ids.defined()) b.cond.time_ids = shared_.time_ids.expand({b.local_size(), 6});
    if (shared_.empty_text.defined()) {  // the empty prompt for every row: guided rollouts' unconditional branch
      b.uncond.text = shared_.empty_text.expand({b.local_size(), -1, -1});
      if (shared_.empty_text_pooled.defined()) b.uncond.text_pooled = shared_.empty_text_pooled.expand({b.local_size(), -1});
      b.uncond.time_ids = b.cond.time_ids;
    }
    if (!layout_.group.empty()) b.group = raw.tensors.at(layout_.group).to(shard_.device, torch::kInt64);
    if (dropout_.p > 0) b.cond.class_id = drop_labels(b, raw.tensors.at(layout_.of(Slot::class_id)));
    return b;
  }

 private:
  // One latent per row: the flipped image's posterior at the flip rate, then a posterior draw or the mean.
  torch::Tensor latent(data::LatentPosterior p, const data::Batch& b, const char* flip_purpose,
                       const char* posterior_purpose) const {
    if (augment_.flip_probability > 0) p = data::choose_flipped(p, augment_.flip_probability, b, flip_purpose);
    return augment_.sample_posterior ? data::sample_posterior(p.mean, p.logvar, b, posterior_purpose) : p.mean;
  }

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
  Augment augment_;
  SharedCondition shared_;
  ShardSpec shard_;
  data::Loader loader_;
  LabelDropout dropout_;
  int64_t next_k_ = -1;
};

Augment read_augment(const config::Section& data) {
  Augment a;
  a.flip_probability = data.get<double>("flip_probability", 0.0);
  a.sample_posterior = data.get<bool>("sample_posterior", false);
  a.empty_prompt_probability = data.get<double>("proportion_empty_prompts", 0.0);
  for (auto [key, p] : {std::pair{"flip_probability", a.flip_probability},
                        std::pair{"proportion_empty_prompts", a.empty_prompt_probability}})
    DUALIGN_CHECK(p >= 0 && p <= 1, "config key '{}': expected a probability in [0, 1], got {}", data.path(key), p);
  return a;
}

// Each switch needs its datasets in the file: fail at startup naming the key and the missing dataset.
void check_augment(const Augment& a, const Layout& l, const std::string& condition, const config::Section& data,
                   const std::string& file) {
  auto need = [&](bool wanted, Slot slot, Slot requires_slot, const char* key, const char* what) {
    if (!wanted || l.of(slot).empty() || !l.of(requires_slot).empty()) return;
    fail("config key '{}': dataset '{}' has no {} for /{} (write it with data_tools/pickapic_to_h5.py, or switch "
         "the key off)", data.path(key), file, what, l.of(slot));
  };
  for (auto [mean, logvar, flip, flip_logvar] : {std::array{Slot::x, Slot::x_logvar, Slot::x_flip, Slot::x_flip_logvar},
                                                 std::array{Slot::x_l, Slot::x_l_logvar, Slot::x_l_flip, Slot::x_l_flip_logvar}}) {
    need(a.sample_posterior, mean, logvar, "sample_posterior", "posterior log-variance");
    need(a.flip_probability > 0, mean, flip, "flip_probability", "flipped-image posterior");
    need(a.flip_probability > 0 && a.sample_posterior, mean, flip_logvar, "flip_probability",
         "flipped-image posterior log-variance");
  }
  if (a.empty_prompt_probability > 0) {
    DUALIGN_CHECK(condition == "text", "config key '{}': prompt dropout needs data.condition: text, got '{}'",
                  data.path("proportion_empty_prompts"), condition);
    DUALIGN_CHECK(!l.of(Slot::empty_text).empty(), "config key '{}': dataset '{}' has no empty_prompt_embedding",
                  data.path("proportion_empty_prompts"), file);
    DUALIGN_CHECK(l.of(Slot::text_pooled).empty() || !l.of(Slot::empty_text_pooled).empty(),
                  "config key '{}': dataset '{}' has no empty_prompt_pooled", data.path("proportion_empty_prompts"),
                  file);
  }
}

// SDXL's size conditioning (original size, crop top-left, target size) of every training image:
// data.time_ids, or [R, R, 0, 0, R, R] with R the shards' resolution, as the Diffusion-DPO SDXL recipe conditions
// every image (the converter stores each image's own time ids too; they are not trained on). Undefined for
// datasets without pooled embeddings.
torch::Tensor read_time_ids(const config::Section& data, const Layout& l, const std::string& file,
                            const torch::Device& device) {
  const bool pooled = !l.of(Slot::text_pooled).empty();
  auto ids = data.get<std::vector<double>>("time_ids", {});
  if (!pooled) {
    DUALIGN_CHECK(ids.empty(), "config key '{}': time ids condition SDXL's pooled text embeddings, and dataset '{}' "
                  "has none (prompt_pooled; data.condition: text)", data.path("time_ids"), file);
    return {};
  }
  if (ids.empty()) {
    auto f = h5::File::open(file);
    DUALIGN_CHECK(f.has_attr("/", "resolution"), "config key '{}': dataset '{}' has no 'resolution' attribute to "
                  "derive SDXL's time ids from; set them, e.g. [1024, 1024, 0, 0, 1024, 1024]", data.path("time_ids"),
                  file);
    const double r = static_cast<double>(f.attr_int("/", "resolution"));
    ids = {r, r, 0, 0, r, r};
  }
  DUALIGN_CHECK(ids.size() == 6, "config key '{}': expected 6 numbers (original height, width, crop top, left, "
                "target height, width), got {}", data.path("time_ids"), ids.size());
  return torch::tensor(ids, torch::kFloat32).view({1, 6}).to(device);
}

// Whether the loader reads a slot's dataset: flipped posteriors only with flips, log-variances only with
// posterior draws, the empty prompt's embeddings never (they are read once).
bool loaded(Slot slot, const Augment& a) {
  switch (slot) {
    case Slot::empty_text: case Slot::empty_text_pooled: return false;
    case Slot::x_flip: case Slot::x_l_flip: return a.flip_probability > 0;
    case Slot::x_logvar: case Slot::x_l_logvar: return a.sample_posterior;
    case Slot::x_flip_logvar: case Slot::x_l_flip_logvar: return a.flip_probability > 0 && a.sample_posterior;
    default: return true;
  }
}

}  // namespace

std::unique_ptr<DataSource> make_h5_source(const config::Section& data, const ShardSpec& shard) {
  const auto path = data.get<std::string>("path");
  const auto condition = data.get<std::string>("condition", "none");
  const bool shuffle = data.get<bool>("shuffle", true);
  const int prefetch = static_cast<int>(data.get<int64_t>("prefetch", 2));
  // `group: class` hands the labels to the method as group ids (Batch::group) whatever the condition.
  const auto group = data.get<std::string>("group", "none");
  const Augment augment = read_augment(data);
  LabelDropout dropout{data.get<double>("label_dropout", 0.0), data.get<int64_t>("null_class", -1)};
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
  Layout layout = layout_of(summary, condition, file, data.path("condition"));
  if (group == "none") layout.group.clear();
  DUALIGN_CHECK(group == "none" || !layout.group.empty(), "config key '{}': dataset '{}' has no class labels to group by",
                data.path("group"), file);
  check_augment(augment, layout, condition, data, file);
  SharedCondition shared;
  shared.time_ids = read_time_ids(data, layout, file, shard.device);
  data.finish({"kind"});

  data::LoaderOptions o;
  o.path = path;
  o.global_batch = shard.global_micro_batch;
  o.rank = shard.rank;
  o.world_size = shard.world_size;
  o.seed = derive_seed(shard.seed, "data/order");
  o.shuffle = shuffle;
  o.prefetch = prefetch;
  o.images_to_float = true;
  for (const auto& [slot, name] : layout.fields)
    if (loaded(slot, augment)) o.fields.push_back(name);
  if (!layout.group.empty() && std::find(o.fields.begin(), o.fields.end(), layout.group) == o.fields.end())
    o.fields.push_back(layout.group);
  DUALIGN_CHECK(summary.rows >= shard.global_micro_batch || std::filesystem::is_directory(path),
                "dataset '{}' has {} samples, fewer than one global micro-batch of {}", path, summary.rows,
                shard.global_micro_batch);
  // The empty prompt's embeddings: prompt dropout draws them, and every batch carries them as its unconditional
  // branch (guided rollouts); read once, whenever the shards store them.
  if (condition == "text" && !layout.of(Slot::empty_text).empty()) {
    auto f = h5::File::open(file);
    shared.empty_text = h5::read_tensor(f, layout.of(Slot::empty_text)).to(shard.device, torch::kFloat32);
    if (!layout.of(Slot::empty_text_pooled).empty())
      shared.empty_text_pooled = h5::read_tensor(f, layout.of(Slot::empty_text_pooled)).to(shard.device, torch::kFloat32);
  }
  return std::make_unique<H5Source>(std::move(o), std::move(layout), augment, std::move(shared), shard, dropout);
}

}  // namespace dualign::train
