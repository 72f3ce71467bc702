// The trainer's HDF5 source with the Stable Diffusion recipe's data path switched on (posterior draws, flips,
// empty prompts): each rank of an mpirun world gets exactly its rows of what one process sees, step after step,
// so np=1 and np=2 train on the same latents and conditions. Each rank compares itself with a world-of-one source
// built in the same process over the same file.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/method_fixture.h"
#include "data_test_util.h"
#include "dist/runtime.h"
#include "recipe_pairs.h"
#include "train/data_source.h"

namespace dualign {
namespace {

const char* kRecipe = "flip_probability: 0.5, sample_posterior: true, proportion_empty_prompts: 0.3";

std::unique_ptr<train::DataSource> source(const std::string& path, const std::string& switches, int rank, int world) {
  auto cfg = test::config_from("data: {kind: h5, path: " + path + ", condition: text, prefetch: 1, " + switches + "}");
  train::ShardSpec shard;
  shard.rank = rank;
  shard.world_size = world;
  shard.global_micro_batch = 8;
  shard.grad_accum = 2;
  shard.seed = 11;
  return train::make_data_source(cfg.section("data"), shard);
}

TEST(H5SourceRecipe, EveryRankGetsItsRowsOfTheGlobalDraws) {
  const auto& w = dist::world();
  auto path = (test::temp_dir() / "pairs.h5").string();  // one file per rank (the directory names the pid)
  test::write_recipe_pairs(path, 40);
  auto mine = source(path, kRecipe, w.rank, w.size);
  auto whole = source(path, kRecipe, 0, 1);
  const int64_t local = 8 / w.size, offset = w.rank * local;
  double flipped = 0, dropped = 0, rows = 0;
  for (int64_t step = 0; step < 6; ++step) {
    for (int64_t micro = 0; micro < 2; ++micro) {
      auto b = mine->next(step, micro), r = whole->next(step, micro);
      ASSERT_EQ(b.x.size(0), local);
      EXPECT_TRUE(torch::equal(b.x, r.x.narrow(0, offset, local))) << "step " << step << " micro " << micro;
      EXPECT_TRUE(torch::equal(b.x_l, r.x_l.narrow(0, offset, local)));
      EXPECT_TRUE(torch::equal(b.cond.text, r.cond.text.narrow(0, offset, local)));
      // The whole batch is not the stored means: draws happened (winner means are integers, stds 0.5).
      EXPECT_GT((r.x - r.x.round()).abs().max().item<double>(), 1e-3);
      flipped += (r.x.flatten(1).mean(1) > 500).sum().item<double>();  // the flipped posteriors are + 1000
      dropped += (r.cond.text.flatten(1).abs().amax(1) == 0).sum().item<double>();
      rows += 8;
    }
  }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, rows);
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, rows);
}

TEST(H5SourceRecipe, SwitchesOffGiveTheStoredMeansAndPrompts) {
  const auto& w = dist::world();
  auto path = (test::temp_dir() / "pairs.h5").string();
  test::write_recipe_pairs(path, 40);
  auto b = source(path, "shuffle: false", w.rank, w.size)->next(0, 0);
  const int64_t local = 8 / w.size;
  for (int64_t i = 0; i < local; ++i) {
    int64_t row = w.rank * local + i;  // no shuffle: global batch 0 is rows 0..7
    EXPECT_EQ(b.x[i].mean().item<double>(), static_cast<double>(row));
    EXPECT_EQ(b.x_l[i].mean().item<double>(), static_cast<double>(-row - 1));
    EXPECT_EQ(b.cond.text[i].mean().item<double>(), static_cast<double>(row % test::kRecipeCaptions + 1));
  }
}

TEST(H5SourceRecipe, ASwitchWithoutItsDatasetNamesTheKeyAndTheFile) {
  auto path = (test::temp_dir() / "pairs.h5").string();
  test::write_recipe_pairs(path, 16);
  {
    auto f = h5::File::open(path, h5::Mode::read_write);
    H5Ldelete(f.id(), "loser_flip", H5P_DEFAULT);
    H5Ldelete(f.id(), "empty_prompt_embedding", H5P_DEFAULT);
  }
  EXPECT_ERROR_MENTIONS(source(path, "flip_probability: 0.5", 0, 1), "data.flip_probability", path, "/loser");
  EXPECT_ERROR_MENTIONS(source(path, "proportion_empty_prompts: 0.2", 0, 1), "data.proportion_empty_prompts", path,
                        "empty_prompt_embedding");
  EXPECT_ERROR_MENTIONS(source(path, "flip_probability: 1.5", 0, 1), "data.flip_probability", "[0, 1]");
}

// SDXL shards: the pooled table follows prompt_index like the text table, prompt dropout empties the hidden states
// and the pooled embedding of the same rows, and every row gets the time ids [R, R, 0, 0, R, R] from the shards'
// resolution (or data.time_ids).
TEST(H5SourceRecipe, SdxlPooledEmbeddingsAndTimeIds) {
  const auto& w = dist::world();
  auto path = (test::temp_dir() / "sdxl.h5").string();
  test::write_recipe_pairs(path, 40);
  {
    auto f = h5::File::open(path, h5::Mode::read_write);
    auto table = torch::arange(1, test::kRecipeCaptions + 1, torch::kFloat32).view({test::kRecipeCaptions, 1});
    h5::write_tensor(f, "prompt_pooled", (10 * table).expand({test::kRecipeCaptions, 7}).contiguous());
    h5::write_tensor(f, "empty_prompt_pooled", torch::zeros({1, 7}));
    f.set_attr("/", "resolution", int64_t(1024));
  }
  auto b = source(path, "shuffle: false", w.rank, w.size)->next(0, 0);
  const int64_t local = 8 / w.size;
  ASSERT_TRUE(b.cond.text_pooled.defined() && b.cond.time_ids.defined());
  EXPECT_EQ(b.cond.text_pooled.sizes(), (std::vector<int64_t>{local, 7}));
  for (int64_t i = 0; i < local; ++i) {
    int64_t row = w.rank * local + i;
    EXPECT_EQ(b.cond.text_pooled[i][0].item<double>(), 10.0 * (row % test::kRecipeCaptions + 1));
  }
  auto expected = torch::tensor({1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0}).expand({local, 6});
  EXPECT_TRUE(torch::equal(b.cond.time_ids, expected)) << b.cond.time_ids;
  auto given = source(path, "time_ids: [768, 1024, 16, 0, 1024, 1024]", w.rank, w.size)->next(0, 0);
  EXPECT_EQ(given.cond.time_ids[0][0].item<double>(), 768.0);
  EXPECT_EQ(given.cond.time_ids[0][2].item<double>(), 16.0);

  auto mine = source(path, kRecipe, w.rank, w.size), whole = source(path, kRecipe, 0, 1);
  const int64_t offset = w.rank * local;
  double dropped = 0;
  for (int64_t step = 0; step < 4; ++step) {
    auto m = mine->next(step, 0), r = whole->next(step, 0);
    EXPECT_TRUE(torch::equal(m.cond.text_pooled, r.cond.text_pooled.narrow(0, offset, local)));
    auto text_dropped = r.cond.text.flatten(1).abs().amax(1) == 0;
    auto pooled_dropped = r.cond.text_pooled.abs().amax(1) == 0;
    EXPECT_TRUE(torch::equal(text_dropped, pooled_dropped)) << "step " << step;
    dropped += text_dropped.sum().item<double>();
  }
  EXPECT_GT(dropped, 0);
  EXPECT_ERROR_MENTIONS(source(path, "time_ids: [1, 2, 3]", 0, 1), "data.time_ids", "6 numbers");
}

}  // namespace
}  // namespace dualign
