// `dualign reward <sub>`: reward-model tools. train-classifier trains the CNN image classifier behind
// `classifier` rewards (and the held-out evaluation classifier: train it on the other half with another seed).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "app/commands.h"
#include "rewards/classifier_train.h"

namespace dualign::app {
namespace {

void add_reward_command(CLI::App& cli) {
  auto* reward = cli.add_subcommand("reward", "Reward-model tools: train-classifier");
  reward->require_subcommand(1);

  auto o = std::make_shared<rewards::ClassifierTrainOptions>();
  auto* train = reward->add_subcommand(
      "train-classifier",
      "Train the CNN image classifier of `classifier` rewards on one half (even/odd rows) of an images file");
  train->add_option("--data", o->train_path, "Training images (format images, e.g. fmnist-train.h5)")->required();
  train->add_option("--test", o->test_path, "Test images for the held-out accuracy (e.g. fmnist-test.h5)")->required();
  train->add_option("--out", o->out_path, "Output classifier checkpoint (.h5)")->required();
  train->add_option("--split", o->split, "Training rows: even | odd | all (reward and evaluation classifiers "
                                         "should use different halves)")->capture_default_str();
  train->add_option("--seed", o->seed, "Seed (initialisation, data order, augmentation)")->capture_default_str();
  train->add_option("--epochs", o->epochs, "Epochs over the chosen rows")->capture_default_str();
  train->add_option("--batch", o->batch, "Batch size")->capture_default_str();
  train->add_option("--width", o->width, "Channels of the first convolution (then 2x, 2x)")->capture_default_str();
  train->add_option("--lr", o->lr, "Peak AdamW learning rate (cosine decay)")->capture_default_str();
  train->add_flag("--augment", o->augment, "Random shifts of up to side/14 pixels (2 at 28x28, 1 at 14x14)");
  train->add_option("--threads", o->threads, "Torch intra-op threads (0 = torch default; 1 is fastest on a shared machine)")->capture_default_str();
  train->add_option("--limit", o->limit, "Use at most this many training rows (quick tests; 0 = all)")
      ->capture_default_str();
  train->callback([o] {
    auto r = rewards::train_classifier(*o);
    std::printf("test_accuracy %.4f\ntrain_seconds %.1f\ntrain_rows %lld\n", r.test_accuracy, r.train_seconds,
                static_cast<long long>(r.train_rows));
  });
}

const bool registered = register_command(add_reward_command);

}  // namespace
}  // namespace dualign::app
