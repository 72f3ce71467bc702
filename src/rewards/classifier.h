// A small CNN image classifier: the reward model behind `classifier` rewards and the held-out evaluation
// classifier (trained on the other half of the training set, with another seed). Input [B, C, H, W] in
// [-1, 1] (Fashion-MNIST: 1×28×28) → logits [B, num_classes].
//   conv(w) → pool → conv(2w) → pool → conv(2w) → flatten (2w·⌊H/4⌋²) → fc(128) → dropout → fc(num_classes)
// with batch norm after each convolution (fast, stable training in one or two epochs on a CPU).
//
// Saved as a dualign checkpoint file: group `model` (parameters and buffers), root attributes
// kind = image_classifier, in_channels, image_size, num_classes, width, plus whatever the trainer adds
// (test_accuracy, split, seed, ...), so a reward can rebuild it from the file alone.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <variant>

namespace dualign::rewards {

struct ClassifierConfig {
  int64_t in_channels = 1;
  int64_t image_size = 28;  // square images (28, or 14 for the downsampled set)
  int64_t num_classes = 10;
  int64_t width = 32;       // channels of the first convolution
};

class ImageClassifierImpl : public torch::nn::Module {
 public:
  explicit ImageClassifierImpl(ClassifierConfig config = {});
  torch::Tensor forward(const torch::Tensor& x);  // [B, C, H, W] → logits [B, num_classes]
  const ClassifierConfig& config() const { return config_; }

 private:
  ClassifierConfig config_;
  torch::nn::Sequential features_{nullptr}, head_{nullptr};
};
TORCH_MODULE(ImageClassifier);

inline constexpr const char* kClassifierKind = "image_classifier";

using AttrValue = std::variant<int64_t, double, std::string>;
// Writes the classifier (weights + config attributes) and extra root attributes (e.g. test_accuracy, seed).
// The file is written as PATH.tmp and renamed, so PATH is always complete.
void save_classifier(const std::string& path, ImageClassifier& model,
                     const std::map<std::string, AttrValue>& attributes = {});

struct LoadedClassifier {
  ImageClassifier model{nullptr};  // in eval mode, on the requested device
  double test_accuracy = -1;       // the stored held-out accuracy (-1 if the file has none)
};
// Rebuilds a classifier from a file written by save_classifier. Errors name the file and what is missing.
LoadedClassifier load_classifier(const std::string& path, const torch::Device& device);

}  // namespace dualign::rewards
