// `dualign sample`'s pieces: the split of rows over ranks and the merge of the parts, per-sample seeds, and
// guided sampling of rows (per-row generators, the null class as the unconditional branch).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "common/class_mlp.h"
#include "config/config.h"
#include "diffusion/guidance.h"
#include "diffusion/scheduler.h"
#include "diffusion/scheduler_json.h"
#include "eval/sample_plan.h"
#include "eval/sampling.h"

using namespace dualign;
using namespace dualign::eval;

namespace {

using test::class_mlp;

GuidedSampling spec_of(const std::string& kind, double guidance) {
  GuidedSampling g;
  g.sampler = diffusion::diffusers_defaults(kind).sampler;
  g.sampler.num_inference_steps = 12;
  g.guidance_scale = guidance;
  return g;
}

data::Condition classes(std::vector<int64_t> ids) {
  data::Condition c;
  c.class_id = torch::tensor(ids, torch::kInt64);
  return c;
}

// Differences of float rounding only, relative to the samples' scale (an untrained MLP's x0 predictions are
// large: ~100 at the linear schedule's first steps).
double relative_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

}  // namespace

TEST(SamplePlan, EveryRowOnceOnSomeRank) {
  for (int world = 1; world <= 5; ++world) {
    std::vector<int> seen(23, 0);
    for (int r = 0; r < world; ++r)
      for (const auto& b : batches_of_rank(23, 4, r, world))
        for (int64_t i = b.begin; i < b.end; ++i) ++seen[size_t(i)];
    for (int64_t i = 0; i < 23; ++i) EXPECT_EQ(seen[size_t(i)], 1) << "world " << world << " row " << i;
  }
  // batch b goes to rank b % world: the batches themselves never change with the world size
  auto r1 = batches_of_rank(23, 4, 1, 3);
  ASSERT_EQ(r1.size(), 2u);
  EXPECT_EQ(r1[0].begin, 4);
  EXPECT_EQ(r1[1].begin, 16);
  EXPECT_EQ(r1[1].end, 20);
  EXPECT_TRUE(batches_of_rank(3, 4, 1, 2).empty());  // more ranks than batches
}

TEST(SamplePlan, MergeRestoresTheGlobalOrder) {
  const int64_t rows = 11, batch = 3;
  for (int world : {1, 2, 4, 5}) {
    std::vector<SamplesFile> parts(static_cast<size_t>(world));
    for (int r = 0; r < world; ++r) {
      std::vector<int64_t> idx;
      for (const auto& b : batches_of_rank(rows, batch, r, world))
        for (int64_t i = b.begin; i < b.end; ++i) idx.push_back(i);
      auto t = torch::tensor(idx, torch::kInt64);
      parts[size_t(r)].samples = t.to(torch::kFloat32).reshape({-1, 1}).repeat({1, 2});
      parts[size_t(r)].seed = t * 10;
      parts[size_t(r)].image_index = t % 4;
      for (auto i : idx) parts[size_t(r)].prompts.push_back("p" + std::to_string(i));
      parts[size_t(r)].int_attrs["steps"] = 7;
    }
    auto merged = merge_parts(parts, rows, batch);
    auto expect = torch::arange(rows, torch::kInt64);
    EXPECT_TRUE(torch::equal(merged.samples.select(1, 0), expect.to(torch::kFloat32))) << world;
    EXPECT_TRUE(torch::equal(merged.seed, expect * 10)) << world;
    EXPECT_TRUE(torch::equal(merged.image_index, expect % 4)) << world;
    EXPECT_EQ(merged.prompts[5], "p5");
    EXPECT_EQ(merged.int_attrs.at("steps"), 7);
  }
  // a part with the wrong number of rows is an error naming the rank
  std::vector<SamplesFile> bad(2);
  bad[0].samples = torch::zeros({6, 1});
  bad[1].samples = torch::zeros({4, 1});
  try {
    merge_parts(bad, 11, 3);
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1"), std::string::npos) << e.what();
  }
}

TEST(SamplePlan, OneSeedPerConditionAndImage) {
  std::set<int64_t> seeds;
  for (int64_t c = 0; c < 20; ++c)
    for (int64_t j = 0; j < 20; ++j) seeds.insert(sample_seed(0, c, j));
  EXPECT_EQ(seeds.size(), 400u);
  EXPECT_EQ(sample_seed(5, 2, 3), sample_seed(5, 2, 3));
  EXPECT_NE(sample_seed(5, 2, 3), sample_seed(6, 2, 3));
  EXPECT_GE(sample_seed(5, 2, 3), 0);
}

// A row's sample depends on its seed and condition only, not on the rows sampled with it (deterministic and
// ancestral schedulers alike): the same numbers up to float rounding (a batch of 1 and a batch of 3 take different
// matrix-multiply kernels).
TEST(SampleRows, ARowDoesNotDependOnItsBatch) {
  auto model = class_mlp();
  diffusion::NoiseSchedule schedule({.kind = "linear"});
  for (std::string kind : {"ddim", "euler_ancestral", "dpmsolver++"}) {
    auto g = spec_of(kind, 2.0);
    auto all = sample_rows(*model, schedule, g, {5, 6, 7}, classes({0, 2, 1}), classes({3, 3, 3}));
    auto one = sample_rows(*model, schedule, g, {6}, classes({2}), classes({3}));
    EXPECT_LE(relative_diff(all[1], one[0]), 1e-5) << kind;
    EXPECT_GT(relative_diff(all[0], all[1]), 1e-2) << kind;
  }
}

// Guided rows are ε_u + w (ε_c - ε_u) with ε_u the null class, through the same scheduler, from the same x_T.
TEST(SampleRows, ClassGuidanceUsesTheNullClass) {
  auto model = class_mlp();
  EXPECT_EQ(model->num_classes(), 3);
  diffusion::NoiseSchedule schedule({.kind = "linear"});
  const double w = 3.0;
  auto g = spec_of("dpmsolver++", w);
  const std::vector<int64_t> seeds{11, 12};
  auto ours = sample_rows(*model, schedule, g, seeds, classes({0, 1}), classes({3, 3}));

  auto cond = [&](const torch::Tensor& x, const torch::Tensor& t) { return model->forward(x, t, classes({0, 1})); };
  auto uncond = [&](const torch::Tensor& x, const torch::Tensor& t) { return model->forward(x, t, classes({3, 3})); };
  std::vector<torch::Tensor> x_T;
  for (auto s : seeds) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(uint64_t(s));
    x_T.push_back(at::normal(0.0, 1.0, {1, 2}, gen));
  }
  auto scheduler = diffusion::make_scheduler(schedule, g.sampler);
  torch::NoGradGuard no_grad;
  auto manual = diffusion::sample_with_scheduler(*scheduler, diffusion::classifier_free_guidance(cond, uncond, w),
                                                 torch::cat(x_T));
  EXPECT_LE(relative_diff(ours, manual), 1e-5);
  auto unguided = sample_rows(*model, schedule, spec_of("dpmsolver++", 1.0), seeds, classes({0, 1}));
  EXPECT_GT(relative_diff(ours, unguided), 1e-2);
}

TEST(SampleRows, GuidanceWithoutAnUnconditionalBranchIsAnError) {
  auto model = class_mlp();
  diffusion::NoiseSchedule schedule({.kind = "linear"});
  EXPECT_THROW(sample_rows(*model, schedule, spec_of("ddim", 2.0), {1}, classes({0})), std::exception);
}
