#include "rewards/classifier.h"

#include <fmt/ranges.h>

#include <filesystem>

#include "ckpt/checkpoint.h"
#include "ckpt/state.h"
#include "util/error.h"

namespace dualign::rewards {
namespace {

// conv3x3 → batch norm → ReLU (→ 2×2 max pool), appended to `s`.
void add_conv_block(torch::nn::Sequential& s, int64_t in, int64_t out, bool pool) {
  s->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false)));
  s->push_back(torch::nn::BatchNorm2d(out));
  s->push_back(torch::nn::ReLU());
  if (pool) s->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
}

}  // namespace

ImageClassifierImpl::ImageClassifierImpl(ClassifierConfig config) : config_(config) {
  DUALIGN_CHECK(config.in_channels > 0 && config.num_classes > 1 && config.width > 0,
                "classifier: need in_channels > 0, num_classes > 1 and width > 0 (got {}, {}, {})", config.in_channels,
                config.num_classes, config.width);
  DUALIGN_CHECK(config.image_size >= 4, "classifier: image_size must be >= 4, got {}", config.image_size);
  const int64_t w = config.width, side = config.image_size / 2 / 2;  // two floor-rounding 2x2 pools: 28→7, 14→3
  torch::nn::Sequential features;
  add_conv_block(features, config.in_channels, w, true);
  add_conv_block(features, w, 2 * w, true);
  add_conv_block(features, 2 * w, 2 * w, false);
  features_ = register_module("features", features);
  head_ = register_module("head", torch::nn::Sequential(torch::nn::Flatten(),
                                                          torch::nn::Linear(2 * w * side * side, 128),
                                                          torch::nn::ReLU(), torch::nn::Dropout(0.2),
                                                          torch::nn::Linear(128, config.num_classes)));
}

torch::Tensor ImageClassifierImpl::forward(const torch::Tensor& x) {
  const auto& c = config_;
  DUALIGN_CHECK(x.dim() == 4 && x.size(1) == c.in_channels && x.size(2) == c.image_size && x.size(3) == c.image_size,
                "classifier: expected images [B, {}, {}, {}], got [{}]", c.in_channels, c.image_size, c.image_size,
                fmt::join(x.sizes(), ", "));
  return head_->forward(features_->forward(x));
}

void save_classifier(const std::string& path, ImageClassifier& model,
                     const std::map<std::string, AttrValue>& attributes) {
  const auto& c = model->config();
  ckpt::CheckpointWriter w(path + ".tmp");
  w.set_attr("kind", kClassifierKind);
  w.set_attr("step", int64_t{0});
  w.set_attr("in_channels", c.in_channels);
  w.set_attr("image_size", c.image_size);
  w.set_attr("num_classes", c.num_classes);
  w.set_attr("width", c.width);
  for (const auto& [k, v] : attributes) std::visit([&, &key = k](const auto& value) { w.set_attr(key, value); }, v);
  w.put_group("model", ckpt::module_state(*model));
  w.close();
  std::filesystem::rename(path + ".tmp", path);  // never leave a half-written classifier under the final name
}

LoadedClassifier load_classifier(const std::string& path, const torch::Device& device) {
  DUALIGN_CHECK(std::filesystem::is_regular_file(path), "classifier checkpoint '{}' does not exist", path);
  ckpt::CheckpointReader r(path);
  const auto kind = r.has_attr("kind") ? r.attr_string("kind") : std::string("<missing>");
  DUALIGN_CHECK(kind == kClassifierKind,
                "'{}' is not an image classifier (root attribute kind = '{}'; write one with `dualign reward "
                "train-classifier`)", path, kind);
  ClassifierConfig c;
  c.in_channels = r.attr_int("in_channels");
  c.image_size = r.attr_int("image_size");
  c.num_classes = r.attr_int("num_classes");
  c.width = r.attr_int("width");
  LoadedClassifier out;
  out.model = ImageClassifier(c);
  r.load_into("model", ckpt::module_state(*out.model));
  out.model->to(device);
  out.model->eval();
  if (r.has_attr("test_accuracy")) out.test_accuracy = r.attr_double("test_accuracy");
  return out;
}

}  // namespace dualign::rewards
