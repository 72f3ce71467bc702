// Training the CNN classifier on an `images` dataset (Fashion-MNIST): the reward classifier and the held-out
// evaluation classifier are trained on disjoint halves of the training set (even / odd sample indices) with
// different seeds, so evaluation never scores samples with the model the policy was optimised against.
#pragma once
#include <cstdint>
#include <string>

#include "rewards/classifier.h"

namespace dualign::rewards {

struct ClassifierTrainOptions {
  std::string train_path, test_path, out_path;
  std::string split = "all";  // even | odd | all: which training rows to use
  uint64_t seed = 0;
  int64_t epochs = 5;  // 14x14 Fashion-MNIST: ~89% test accuracy (width 32) in ~35 s on one core
  int64_t batch = 128;
  int64_t width = 32;
  double lr = 2e-3;      // AdamW, cosine decay to 5% over the run
  bool augment = false;  // random shifts of up to image_size/14 pixels (2 at 28x28, 1 at 14x14)
  int threads = 1;       // torch intra-op threads; 0 = torch's default. One thread is fastest for this small
                         // CNN on a shared machine (2 threads under load: 10x slower, spinning at barriers)
  int64_t limit = 0;     // > 0: use at most this many training rows (tests)
};

struct ClassifierTrainResult {
  double test_accuracy = 0;
  double train_seconds = 0;
  int64_t train_rows = 0, test_rows = 0;
};

// Trains, evaluates on the test file, saves to out_path (attributes: test_accuracy, split, seed, data paths,
// epochs, train_seconds) and logs progress.
ClassifierTrainResult train_classifier(const ClassifierTrainOptions& options);

// Fraction of rows whose argmax class equals `labels` (images uint8 or float in [-1, 1]).
double classifier_accuracy(ImageClassifier& model, const torch::Tensor& images, const torch::Tensor& labels,
                           int64_t batch = 1000);

}  // namespace dualign::rewards
