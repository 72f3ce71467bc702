#include "rewards/classifier_train.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "data/h5.h"
#include "data/h5_tensor.h"
#include "data/schema.h"
#include "util/error.h"
#include "util/log.h"
#include "util/seed.h"

namespace dualign::rewards {
namespace {

struct ImageSet {
  torch::Tensor images;  // uint8 or float32 [N, C, H, W]
  torch::Tensor labels;  // int64 [N]
  int64_t num_classes = 0;
};

// A whole `images` file in memory (Fashion-MNIST train: 47 MB as uint8).
ImageSet read_images(const std::string& path) {
  auto summary = data::validate(path, "images", /*read_data=*/false);
  auto f = h5::File::open(path);
  ImageSet s;
  s.images = h5::read_tensor(f, "images");
  s.labels = h5::read_tensor(f, "labels").to(torch::kLong);
  DUALIGN_CHECK(s.images.dim() == 4 && s.images.size(2) == s.images.size(3),
                "{}: the classifier needs square images [N, C, H, W], got {} dimensions", f.where("images"),
                s.images.dim());
  s.num_classes = f.has_attr("/", "num_classes") ? f.attr_int("/", "num_classes") : s.labels.max().item<int64_t>() + 1;
  return s;
}

torch::Tensor to_model_range(const torch::Tensor& images) {
  if (images.scalar_type() == torch::kUInt8) return images.to(torch::kFloat) / 127.5 - 1.0;
  return images.to(torch::kFloat);
}

// Shifts every image by its own random offset in [-p, p]², p = side/14 (padding at the background value -1).
torch::Tensor random_shift(const torch::Tensor& x, at::Generator& gen) {
  const int64_t h = x.size(2), w = x.size(3), pad = std::max<int64_t>(1, h / 14);
  auto padded = torch::constant_pad_nd(x, {pad, pad, pad, pad}, -1.0);
  auto offsets = torch::randint(0, 2 * pad + 1, {x.size(0), 2}, gen, torch::kLong);
  auto acc = offsets.accessor<int64_t, 2>();
  std::vector<torch::Tensor> rows;
  rows.reserve(x.size(0));
  for (int64_t i = 0; i < x.size(0); ++i)
    rows.push_back(padded[i].slice(1, acc[i][0], acc[i][0] + h).slice(2, acc[i][1], acc[i][1] + w));
  return torch::stack(rows);
}

}  // namespace

double classifier_accuracy(ImageClassifier& model, const torch::Tensor& images, const torch::Tensor& labels,
                           int64_t batch) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  int64_t correct = 0;
  for (int64_t start = 0; start < images.size(0); start += batch) {
    const int64_t end = std::min(start + batch, images.size(0));
    auto pred = model->forward(to_model_range(images.slice(0, start, end))).argmax(1);
    correct += (pred == labels.slice(0, start, end)).sum().item<int64_t>();
  }
  model->train(was_training);
  return images.size(0) ? static_cast<double>(correct) / images.size(0) : 0.0;
}

ClassifierTrainResult train_classifier(const ClassifierTrainOptions& o) {
  DUALIGN_CHECK(o.split == "even" || o.split == "odd" || o.split == "all", "--split: expected even, odd or all, got '{}'",
                o.split);
  DUALIGN_CHECK(o.epochs > 0 && o.batch > 0 && o.width > 0, "--epochs, --batch and --width must be positive");
  if (o.threads > 0) torch::set_num_threads(o.threads);
  auto train = read_images(o.train_path);
  auto test = read_images(o.test_path);
  DUALIGN_CHECK(train.images.sizes().slice(1) == test.images.sizes().slice(1),
                "train images {} and test images {} have different shapes", o.train_path, o.test_path);

  // The split: every other row, so both halves keep the class balance of the file.
  if (o.split != "all") {
    auto rows = torch::arange(o.split == "even" ? 0 : 1, train.images.size(0), 2, torch::kLong);
    train.images = train.images.index_select(0, rows);
    train.labels = train.labels.index_select(0, rows);
  }
  if (o.limit > 0 && o.limit < train.images.size(0)) {
    train.images = train.images.slice(0, 0, o.limit);
    train.labels = train.labels.slice(0, 0, o.limit);
  }
  const int64_t n = train.images.size(0);
  DUALIGN_CHECK(n >= o.batch, "{}: {} training rows in split '{}' is fewer than one batch of {}", o.train_path, n,
                o.split, o.batch);

  torch::manual_seed(derive_seed(o.seed, "classifier/init"));
  ClassifierConfig cfg{train.images.size(1), train.images.size(2), train.num_classes, o.width};
  ImageClassifier model(cfg);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(1e-4));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(o.seed, "classifier/data"));
  const int64_t steps_per_epoch = n / o.batch, total = steps_per_epoch * o.epochs;
  log::info("classifier: {} training rows (split {}), {} test rows, width {}, {} epochs x {} steps, {} threads", n,
            o.split, test.images.size(0), o.width, o.epochs, steps_per_epoch, torch::get_num_threads());

  const auto t0 = std::chrono::steady_clock::now();
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    model->train();
    auto order = torch::randperm(n, gen, torch::kLong);
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t b = 0; b < steps_per_epoch; ++b, ++step) {
      auto rows = order.slice(0, b * o.batch, (b + 1) * o.batch);
      auto x = to_model_range(train.images.index_select(0, rows));
      auto y = train.labels.index_select(0, rows);
      if (o.augment) x = random_shift(x, gen);
      const double lr = o.lr * (0.05 + 0.95 * 0.5 * (1 + std::cos(M_PI * step / total)));
      for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      auto logits = model->forward(x);
      auto loss = torch::cross_entropy_loss(logits, y);
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>();
      correct += (logits.argmax(1) == y).sum().item<int64_t>();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log::info("classifier epoch {}/{}: loss {:.4f}, train accuracy {:.4f}, {:.1f} s", epoch + 1, o.epochs,
              loss_sum / steps_per_epoch, static_cast<double>(correct) / (steps_per_epoch * o.batch), secs);
  }
  ClassifierTrainResult r;
  r.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.test_accuracy = classifier_accuracy(model, test.images, test.labels);
  r.train_rows = n;
  r.test_rows = test.images.size(0);
  log::info("classifier: test accuracy {:.4f} on {} images ({:.1f} s training)", r.test_accuracy, r.test_rows,
            r.train_seconds);

  save_classifier(o.out_path, model,
                  {{"test_accuracy", r.test_accuracy}, {"test_rows", r.test_rows}, {"train_rows", r.train_rows},
                   {"split", o.split}, {"seed", static_cast<int64_t>(o.seed)}, {"epochs", o.epochs},
                   {"batch", o.batch}, {"augment", int64_t{o.augment}}, {"train_seconds", r.train_seconds},
                   {"train_data", o.train_path}, {"test_data", o.test_path}});
  log::info("wrote {}", o.out_path);
  return r;
}

}  // namespace dualign::rewards
