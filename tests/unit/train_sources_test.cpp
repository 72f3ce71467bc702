// The trainer's HDF5 data source: data.label_dropout replaces class ids by the null class at the configured rate,
// the same rows at any world size, and leaves the other rows alone.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "config/config.h"
#include "data/synthetic.h"
#include "train/data_source.h"
#include "util/error.h"

using namespace dualign;
namespace fs = std::filesystem;

namespace {

config::Config config_from(const std::string& yaml) {
  config::Composed c;
  c.config = c.resolved = YAML::Load(yaml);
  return config::Config(std::move(c));
}

struct Points {
  fs::path path = fs::temp_directory_path() / ("dualign_label_dropout_" + std::to_string(::getpid()) + ".h5");
  Points() { data::write_mixture_points(path.string(), 20000, {.components = 3}); }
  ~Points() { fs::remove(path); }
};

// Labels of global micro-batch (step 0, micro 0) as rank `rank` of `world` sees them, plus the undropped labels.
std::pair<torch::Tensor, torch::Tensor> labels(const std::string& path, double p, int rank, int world, int64_t g) {
  auto cfg = config_from(fmt::format("data: {{kind: h5, path: {}, condition: class, shuffle: false, "
                                     "label_dropout: {}, null_class: 3}}", path, p));
  auto plain = config_from(fmt::format("data: {{kind: h5, path: {}, condition: class, shuffle: false}}", path));
  train::ShardSpec shard{.rank = rank, .world_size = world, .global_micro_batch = g, .grad_accum = 1, .seed = 9};
  auto dropped = train::make_data_source(cfg.section("data"), shard)->next(0, 0).cond.class_id;
  auto kept = train::make_data_source(plain.section("data"), shard)->next(0, 0).cond.class_id;
  return {dropped, kept};
}

}  // namespace

TEST(H5SourceLabelDropout, RateRowsAndWorldSize) {
  Points points;
  const int64_t g = 16000;
  const double p = 0.2;
  auto [dropped, kept] = labels(points.path.string(), p, 0, 1, g);
  auto is_null = dropped == 3;
  const double rate = is_null.to(torch::kFloat64).mean().item<double>();
  const double se = std::sqrt(p * (1 - p) / double(g));  // 0.0032
  EXPECT_NEAR(rate, p, 4 * se);
  EXPECT_TRUE(torch::equal(dropped.masked_select(~is_null), kept.masked_select(~is_null)));  // others untouched
  EXPECT_EQ(kept.max().item<int64_t>(), 2);
  // Rank r of 2 drops exactly the rows the single process drops in its half.
  auto [r0, k0] = labels(points.path.string(), p, 0, 2, g);
  auto [r1, k1] = labels(points.path.string(), p, 1, 2, g);
  EXPECT_TRUE(torch::equal(torch::cat({r0, r1}), dropped));
}

TEST(H5SourceLabelDropout, NeedsTheNullClassAndClassCondition) {
  Points points;
  auto error = [&](const std::string& extra) {
    auto cfg = config_from(fmt::format("data: {{kind: h5, path: {}, {}}}", points.path.string(), extra));
    train::ShardSpec shard{.global_micro_batch = 8};
    try {
      train::make_data_source(cfg.section("data"), shard);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error("condition: class, label_dropout: 0.1").find("label_dropout"), std::string::npos);
  EXPECT_NE(error("condition: none, label_dropout: 0.1, null_class: 3").find("label_dropout"), std::string::npos);
  EXPECT_NE(error("condition: class, label_dropout: 1.5, null_class: 3").find("label_dropout"), std::string::npos);
  // a null class inside the dataset's label range would silently merge a real class with "no label"
  auto cfg = config_from(fmt::format("data: {{kind: h5, path: {}, condition: class, label_dropout: 0.5, null_class: 2}}",
                                     points.path.string()));
  train::ShardSpec shard{.global_micro_batch = 64};
  EXPECT_THROW(train::make_data_source(cfg.section("data"), shard)->next(0, 0), Error);
}
