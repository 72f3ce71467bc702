#include "data/synthetic.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <filesystem>

#include "data/h5.h"
#include "data/h5_tensor.h"
#include "data/idx.h"
#include "data/schema.h"
#include "util/log.h"
#include "util/progress.h"

namespace dualign::data {
namespace {

struct MixtureSample {
  torch::Tensor points;     // [n, 2] float32
  torch::Tensor component;  // [n] int64
};

MixtureSample sample_mixture(int64_t n, const MixtureSpec& mix, at::Generator& gen) {
  DUALIGN_CHECK(mix.components >= 1 && mix.stddev > 0, "mixture: need >= 1 component and stddev > 0");
  auto angles = torch::arange(mix.components, torch::kDouble) * (2 * M_PI / mix.components);
  auto centers = torch::stack({angles.cos(), angles.sin()}, 1) * mix.radius;  // [K, 2]
  auto comp = torch::randint(mix.components, {n}, gen, torch::kLong);
  auto x = centers.index_select(0, comp) + mix.stddev * torch::randn({n, 2}, gen, torch::kDouble);
  return {x.to(torch::kFloat), comp};
}

torch::Tensor rewards(const torch::Tensor& x, const OracleSpec& oracle) {
  DUALIGN_CHECK(static_cast<int64_t>(oracle.target.size()) == x.size(1), "oracle target has {} coordinates, points have {}",
                oracle.target.size(), x.size(1));
  auto target = torch::tensor(oracle.target, torch::kDouble);
  return -(x.to(torch::kDouble) - target).pow(2).sum(1);
}

void write_mixture_attrs(h5::File& f, const MixtureSpec& mix) {
  f.set_attr("/", "generator", "gaussian_mixture_2d");
  f.set_attr("/", "mixture_components", int64_t{mix.components});
  f.set_attr("/", "mixture_radius", mix.radius);
  f.set_attr("/", "mixture_stddev", mix.stddev);
  f.set_attr("/", "seed", static_cast<int64_t>(mix.seed));
}

void write_oracle_attrs(h5::File& f, const OracleSpec& oracle) {
  std::string target;
  for (double t : oracle.target) target += (target.empty() ? "" : ",") + fmt::format("{}", t);
  f.set_attr("/", "reward", fmt::format("-||x - [{}]||^2", target));
  f.set_attr("/", "bradley_terry_beta", oracle.beta);
}

}  // namespace

double quadratic_reward(const float* x, const std::vector<double>& target) {
  double r = 0;
  for (size_t i = 0; i < target.size(); ++i) r -= (x[i] - target[i]) * (x[i] - target[i]);
  return r;
}

void write_mixture_points(const std::string& path, int64_t n, const MixtureSpec& mix, bool progress) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(mix.seed);
  auto s = sample_mixture(n, mix, gen);
  auto f = h5::File::create(path);
  write_format_attrs(f, "points");
  write_mixture_attrs(f, mix);
  f.set_attr("/", "num_classes", int64_t{mix.components});
  h5::write_tensor(f, "points", s.points, {0, 4});
  h5::write_tensor(f, "labels", s.component, {0, 4});
  f.close();
  if (progress) log::info("wrote {}: {} points from {} components", path, n, mix.components);
}

void write_mixture_pairs(const std::string& path, int64_t n, const MixtureSpec& mix, const OracleSpec& oracle,
                         bool progress) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(mix.seed);
  auto a = sample_mixture(n, mix, gen).points;
  auto b = sample_mixture(n, mix, gen).points;
  auto ra = rewards(a, oracle), rb = rewards(b, oracle);
  auto p_a = torch::sigmoid(oracle.beta * (ra - rb));
  auto a_wins = torch::rand({n}, gen, torch::kDouble) < p_a;
  auto winner = torch::where(a_wins.unsqueeze(1), a, b), loser = torch::where(a_wins.unsqueeze(1), b, a);
  auto score_w = torch::where(a_wins, ra, rb).to(torch::kFloat), score_l = torch::where(a_wins, rb, ra).to(torch::kFloat);
  auto f = h5::File::create(path);
  write_format_attrs(f, "preference_pairs");
  write_mixture_attrs(f, mix);
  write_oracle_attrs(f, oracle);
  for (auto& [name, t] : std::vector<std::pair<std::string, torch::Tensor>>{
           {"winner", winner}, {"loser", loser}, {"score_w", score_w}, {"score_l", score_l}})
    h5::write_tensor(f, name, t, {0, 4});
  f.close();
  if (progress) {
    double agree = (score_w > score_l).to(torch::kDouble).mean().item<double>();
    log::info("wrote {}: {} pairs, oracle winner has the higher reward in {:.1f}% of pairs", path, n, 100 * agree);
  }
}

void write_mixture_labelled(const std::string& path, int64_t n, const MixtureSpec& mix, const OracleSpec& oracle,
                            bool progress) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(mix.seed);
  auto x = sample_mixture(n, mix, gen).points;
  auto r = rewards(x, oracle);
  auto p = torch::sigmoid(oracle.beta * (r - r.mean()));
  auto desirable = (torch::rand({n}, gen, torch::kDouble) < p).to(torch::kChar);
  auto f = h5::File::create(path);
  write_format_attrs(f, "labelled_samples");
  write_mixture_attrs(f, mix);
  write_oracle_attrs(f, oracle);
  h5::write_tensor(f, "samples", x, {0, 4});
  h5::write_tensor(f, "desirable", desirable, {0, 4});
  h5::write_tensor(f, "score", r.to(torch::kFloat), {0, 4});
  f.close();
  if (progress)
    log::info("wrote {}: {} samples, {:.1f}% desirable", path, n, 100 * desirable.to(torch::kDouble).mean().item<double>());
}

namespace {

// k×k block means (rounded) of n images of h×w uint8 pixels: an exact, antialiased downscale by k.
std::vector<uint8_t> block_mean(const std::vector<uint8_t>& in, int64_t n, int64_t h, int64_t w, int64_t k) {
  const int64_t oh = h / k, ow = w / k;
  std::vector<uint8_t> out(static_cast<size_t>(n * oh * ow));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t x = 0; x < ow; ++x) {
        int64_t sum = 0;
        for (int64_t dy = 0; dy < k; ++dy)
          for (int64_t dx = 0; dx < k; ++dx) sum += in[static_cast<size_t>((i * h + y * k + dy) * w + x * k + dx)];
        out[static_cast<size_t>((i * oh + y) * ow + x)] = static_cast<uint8_t>((sum + k * k / 2) / (k * k));
      }
  return out;
}

}  // namespace

namespace {

// Indices of the images `subset` keeps, in file order.
std::vector<int64_t> subset_indices(const std::vector<int64_t>& labels, const ClassSubset& subset) {
  for (auto [c, f] : subset.fraction)
    DUALIGN_CHECK(c >= 0 && c < 10 && f >= 0 && f <= 1, "--class-fraction {}={}: need a class 0..9 and a fraction in [0, 1]", c, f);
  for (auto c : subset.classes) DUALIGN_CHECK(c >= 0 && c < 10, "--classes: class {} is not in 0..9", c);
  std::map<int64_t, int64_t> total, kept;
  for (auto c : labels) ++total[c];
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < static_cast<int64_t>(labels.size()); ++i) {
    const int64_t c = labels[i];
    if (!subset.classes.empty() && std::find(subset.classes.begin(), subset.classes.end(), c) == subset.classes.end())
      continue;
    auto f = subset.fraction.find(c);
    if (f != subset.fraction.end() && kept[c] >= std::llround(f->second * static_cast<double>(total[c]))) continue;
    ++kept[c];
    keep.push_back(i);
  }
  DUALIGN_CHECK(!keep.empty(), "the class subset keeps no training image");
  return keep;
}

}  // namespace

void import_fashion_mnist(const std::string& idx_dir, const std::string& out_dir, bool progress, int64_t downsample,
                          const ClassSubset& subset) {
  DUALIGN_CHECK(downsample >= 1 && 28 % downsample == 0, "--downsample must divide 28 (1, 2, 4, 7), got {}",
                downsample);
  std::filesystem::create_directories(out_dir);
  Progress bar("fashion-mnist", 4, progress, 0.0);
  int done = 0;
  for (auto [split, prefix] : {std::pair{"train", "train"}, std::pair{"test", "t10k"}}) {
    auto images = read_idx(find_idx_file(idx_dir, std::string(prefix) + "-images-idx3-ubyte"));
    auto labels = read_idx(find_idx_file(idx_dir, std::string(prefix) + "-labels-idx1-ubyte"));
    bar.update(++done, fmt::format("read {} ({} images)", split, images.shape.at(0)));
    DUALIGN_CHECK(images.shape.size() == 3 && labels.shape.size() == 1 && images.shape[0] == labels.shape[0],
                  "{}: images {} and labels {} IDX files do not match", idx_dir, images.shape.size(), labels.shape.size());
    int64_t n = images.shape[0];
    std::vector<int64_t> ids(labels.data.begin(), labels.data.end());
    if (std::string(split) == "train" && !subset.empty()) {
      const auto keep = subset_indices(ids, subset);
      const size_t pixels_per_image = images.data.size() / static_cast<size_t>(n);
      std::vector<uint8_t> kept_pixels;
      std::vector<int64_t> kept_ids;
      kept_pixels.reserve(keep.size() * pixels_per_image);
      for (auto i : keep) {
        auto first = images.data.begin() + static_cast<std::ptrdiff_t>(i * pixels_per_image);
        kept_pixels.insert(kept_pixels.end(), first, first + static_cast<std::ptrdiff_t>(pixels_per_image));
        kept_ids.push_back(ids[i]);
      }
      images.data = std::move(kept_pixels);
      images.shape[0] = n = static_cast<int64_t>(keep.size());
      ids = std::move(kept_ids);
    }
    std::string path = (std::filesystem::path(out_dir) / fmt::format("fmnist-{}.h5", split)).string();
    auto f = h5::File::create(path);
    write_format_attrs(f, "images");
    f.set_attr("/", "source", "Fashion-MNIST (Debian dataset-fashion-mnist IDX files)");
    f.set_attr("/", "split", std::string(split));
    f.set_attr("/", "num_classes", int64_t{10});
    f.set_attr("/", "value_range", "uint8 0..255");
    // 256-image chunks (200 KB) with gzip: about 2x smaller, and the loader's chunk cache holds the whole set.
    f.set_attr("/", "downsample", downsample);
    if (std::string(split) == "train" && !subset.empty()) {
      std::string desc = "classes:";
      for (auto c : subset.classes) desc += fmt::format(" {}", c);
      desc += subset.classes.empty() ? " all; fractions:" : "; fractions:";
      for (auto [c, fr] : subset.fraction) desc += fmt::format(" {}={}", c, fr);
      f.set_attr("/", "class_subset", desc);
    }
    const int64_t h = images.shape[1] / downsample, w = images.shape[2] / downsample;
    auto pixels = downsample == 1 ? images.data : block_mean(images.data, n, images.shape[1], images.shape[2], downsample);
    f.write("images", h5::DType::u8, {n, 1, h, w}, pixels.data(), {256, 4});
    h5::write_vector(f, "labels", ids, {4096, 4});
    f.close();
    bar.update(++done, fmt::format("wrote {}", path));
  }
  bar.finish();
}

}  // namespace dualign::data
