// Loader: shards of all ranks form the global batch, the order is independent of the world size, and a cursor
// resumes the exact sequence (also at another world size).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "data/h5.h"
#include "data/h5_tensor.h"
#include "data/loader.h"
#include "data/schema.h"
#include "data_test_util.h"
#include "recipe_pairs.h"

namespace dualign {
namespace {

// A points file whose label of row i is i, so a batch tells which rows it holds.
std::string write_indexed_points(const std::filesystem::path& dir, int64_t n) {
  auto path = (dir / "points.h5").string();
  auto f = h5::File::create(path);
  data::write_format_attrs(f, "points");
  auto ids = torch::arange(n);
  h5::write_tensor(f, "points", torch::stack({ids.to(torch::kFloat), -ids.to(torch::kFloat)}, 1), {16, 4});
  h5::write_tensor(f, "labels", ids);
  f.write_strings("prompt", [&] {
    std::vector<std::string> p;
    for (int64_t i = 0; i < n; ++i) p.push_back("p" + std::to_string(i));
    return p;
  }());
  return path;
}

std::vector<int64_t> ids_of(const data::LoadedBatch& b) {
  auto l = b["labels"];
  return {l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel()};
}

data::LoaderOptions options(const std::string& path, int rank, int world, int prefetch = 2) {
  data::LoaderOptions o;
  o.path = path;
  o.global_batch = 8;
  o.rank = rank;
  o.world_size = world;
  o.seed = 42;
  o.prefetch = prefetch;
  o.fields = {"points", "labels", "prompt"};
  return o;
}

TEST(DataLoader, EpochOrderIsADeterministicPermutation) {
  auto a = data::Loader::epoch_order(1000, 7, 0), b = data::Loader::epoch_order(1000, 7, 0);
  auto c = data::Loader::epoch_order(1000, 7, 1), d = data::Loader::epoch_order(1000, 8, 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 1000u);
}

TEST(DataLoader, UnionOfRankShardsIsTheGlobalBatch) {
  auto path = write_indexed_points(test::temp_dir(), 100);
  data::Loader single(options(path, 0, 1));
  std::vector<std::unique_ptr<data::Loader>> ranks;
  for (int r = 0; r < 4; ++r) ranks.push_back(std::make_unique<data::Loader>(options(path, r, 4)));
  EXPECT_EQ(single.batches_per_epoch(), 12);  // 100 / 8, the tail of 4 is dropped
  for (int step = 0; step < 30; ++step) {     // crosses two epoch boundaries
    auto global = single.next();
    std::vector<int64_t> joined;
    for (auto& r : ranks) {
      auto b = r->next();
      EXPECT_EQ(b.indices.size(), 2u);
      EXPECT_EQ(b.cursor, global.cursor);
      for (auto id : ids_of(b)) joined.push_back(id);
      // Every field holds the same rows.
      EXPECT_EQ(b["points"].select(1, 0).to(torch::kLong).equal(b["labels"]), true);
      EXPECT_EQ(b.strings.at("prompt")[0], "p" + std::to_string(ids_of(b)[0]));
    }
    EXPECT_EQ(joined, ids_of(global)) << "step " << step;
    EXPECT_EQ(joined, global.indices);
  }
  // Within an epoch no sample repeats.
  data::Loader fresh(options(path, 0, 1, 0));
  std::set<int64_t> seen;
  for (int i = 0; i < fresh.batches_per_epoch(); ++i)
    for (auto id : ids_of(fresh.next())) EXPECT_TRUE(seen.insert(id).second);
  EXPECT_EQ(fresh.cursor(), (data::Cursor{1, 0}));
}

TEST(DataLoader, ResumeFromCursorReproducesTheSequence) {
  auto path = write_indexed_points(test::temp_dir(), 50);
  data::Loader straight(options(path, 1, 2));
  std::vector<std::vector<int64_t>> expected;
  for (int i = 0; i < 20; ++i) expected.push_back(ids_of(straight.next()));

  data::Loader first(options(path, 1, 2));
  for (int i = 0; i < 9; ++i) EXPECT_EQ(ids_of(first.next()), expected[i]);
  data::Cursor saved = first.cursor();  // what a checkpoint stores (prefetched batches are not counted)
  data::Loader resumed(options(path, 1, 2), saved);
  for (int i = 9; i < 20; ++i) EXPECT_EQ(ids_of(resumed.next()), expected[i]) << "batch " << i;
  first.seek(saved);
  EXPECT_EQ(ids_of(first.next()), expected[9]);
  // The cursor of batch k is computable from k alone (50 rows, G = 8: 6 batches per epoch).
  EXPECT_EQ(first.cursor_of_batch(9), saved);
  EXPECT_EQ(first.cursor_of_batch(13), (data::Cursor{2, 8}));
  data::Loader from_step(options(path, 1, 2), first.cursor_of_batch(17));
  EXPECT_EQ(ids_of(from_step.next()), expected[17]);
}

TEST(DataLoader, CursorFromTwoRanksContinuesAtOneRankAndBack) {
  auto path = write_indexed_points(test::temp_dir(), 64);
  data::Loader reference(options(path, 0, 1));
  std::vector<std::vector<int64_t>> global;
  for (int i = 0; i < 20; ++i) global.push_back(ids_of(reference.next()));

  // np=2 for 5 steps, then np=1 from the saved cursor, then np=4 from that one.
  data::Loader r0(options(path, 0, 2)), r1(options(path, 1, 2));
  for (int i = 0; i < 5; ++i) {
    auto a = ids_of(r0.next()), b = ids_of(r1.next());
    a.insert(a.end(), b.begin(), b.end());
    EXPECT_EQ(a, global[i]);
  }
  EXPECT_EQ(r0.cursor(), r1.cursor());
  data::Loader one(options(path, 0, 1), r0.cursor());
  for (int i = 5; i < 12; ++i) EXPECT_EQ(ids_of(one.next()), global[i]);
  std::vector<std::unique_ptr<data::Loader>> four;
  for (int r = 0; r < 4; ++r) four.push_back(std::make_unique<data::Loader>(options(path, r, 4), one.cursor()));
  for (int i = 12; i < 20; ++i) {
    std::vector<int64_t> joined;
    for (auto& l : four)
      for (auto id : ids_of(l->next())) joined.push_back(id);
    EXPECT_EQ(joined, global[i]);
  }
}

TEST(DataLoader, DirectoryOfShardFilesIsOneDataset) {
  auto dir = test::temp_dir() / "shards";
  std::filesystem::create_directories(dir);
  int64_t first = 0;
  for (int64_t n : {30, 25, 45}) {  // pickapic-00000.h5 ... with labels = global sample id
    auto f = h5::File::create((dir / fmt::format("part-{:05}.h5", first)).string());
    data::write_format_attrs(f, "points");
    auto ids = torch::arange(first, first + n);
    h5::write_tensor(f, "points", torch::stack({ids.to(torch::kFloat), -ids.to(torch::kFloat)}, 1), {16, 4});
    h5::write_tensor(f, "labels", ids);
    std::vector<std::string> prompts;
    for (int64_t i = first; i < first + n; ++i) prompts.push_back("p" + std::to_string(i));
    f.write_strings("prompt", prompts);
    first += n;
  }
  auto o = options(dir.string(), 1, 2);
  data::Loader loader(o);
  EXPECT_EQ(loader.size(), 100);
  for (int i = 0; i < 30; ++i) {
    auto b = loader.next();
    EXPECT_EQ(ids_of(b), b.indices);
    EXPECT_EQ(b.strings.at("prompt")[1], "p" + std::to_string(b.indices[1]));
  }
}

TEST(DataLoader, ATableFieldComesBackPerSampleThroughItsIndex) {
  auto dir = test::temp_dir();
  test::write_recipe_pairs((dir / "a.h5").string(), 7);
  test::write_recipe_pairs((dir / "b.h5").string(), 9);  // its own table: row i of b reads b's prompt_embedding
  data::LoaderOptions o;
  o.path = dir.string();
  o.global_batch = 16;
  o.fields = {"winner", "prompt_embedding"};
  o.prefetch = 0;
  data::Loader loader(o);
  EXPECT_EQ(loader.size(), 16);
  auto b = loader.next();
  ASSERT_EQ(b["prompt_embedding"].sizes(), (std::vector<int64_t>{16, 3, 4}));
  EXPECT_EQ(b["winner"].scalar_type(), torch::kHalf);
  for (size_t i = 0; i < b.indices.size(); ++i) {
    int64_t id = b.indices[i], local = id < 7 ? id : id - 7;
    EXPECT_EQ(b["winner"][i][0][0][0].item<double>(), static_cast<double>(local));
    EXPECT_EQ(b["prompt_embedding"][i][1][2].item<double>(), static_cast<double>(local % test::kRecipeCaptions + 1));
  }
}

TEST(DataLoader, ClearErrors) {
  auto path = write_indexed_points(test::temp_dir(), 20);
  auto o = options(path, 0, 3);
  EXPECT_ERROR_MENTIONS(data::Loader{o}, "global batch 8", "world size 3");
  o = options(path, 0, 1);
  o.fields = {"points", "images"};
  EXPECT_ERROR_MENTIONS(data::Loader{o}, path, "images");
  o = options(path, 0, 1);
  o.global_batch = 32;
  EXPECT_ERROR_MENTIONS(data::Loader{o}, path, "20 samples");
}

}  // namespace
}  // namespace dualign
