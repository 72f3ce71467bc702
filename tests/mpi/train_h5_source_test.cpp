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

}  // namespace
}  // namespace dualign
