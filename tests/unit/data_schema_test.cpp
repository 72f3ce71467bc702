// Dataset validation: every bad file gives a dualign::Error naming the file and the dataset, never a crash.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <functional>
#include <map>

#include "data/h5.h"
#include "data/h5_tensor.h"
#include "data/schema.h"
#include "data/synthetic.h"
#include "data_test_util.h"
#include "recipe_pairs.h"

namespace dualign {
namespace {

// A valid images file: n uint8 images [n,1,8,8] (compressed, checksummed) and int64 labels.
std::string write_images(const std::filesystem::path& dir, int64_t n = 512) {
  auto path = (dir / "images.h5").string();
  auto f = h5::File::create(path);
  data::write_format_attrs(f, "images");
  f.set_attr("/", "num_classes", int64_t{10});
  // Random bytes do not compress: the image chunks fill most of the file (the corruption test relies on it).
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  auto images = torch::randint(256, {n, 1, 8, 8}, gen, torch::kByte);
  h5::write_tensor(f, "images", images, {64, 4});
  h5::write_tensor(f, "labels", torch::arange(n) % 10);
  return path;
}

TEST(DataSchema, ValidFilesPass) {
  auto dir = test::temp_dir();
  auto s = data::validate(write_images(dir));
  EXPECT_EQ(s.format, "images");
  EXPECT_EQ(s.rows, 512);
  data::write_mixture_points((dir / "p.h5").string(), 100, {});
  data::write_mixture_pairs((dir / "pairs.h5").string(), 100, {}, {});
  data::write_mixture_labelled((dir / "kto.h5").string(), 100, {}, {});
  EXPECT_EQ(data::validate((dir / "p.h5").string(), "points").rows, 100);
  EXPECT_EQ(data::validate((dir / "pairs.h5").string(), "preference_pairs").rows, 100);
  EXPECT_EQ(data::validate((dir / "kto.h5").string(), "labelled_samples").rows, 100);
}

TEST(DataSchema, TruncatedFileIsAnError) {
  auto path = write_images(test::temp_dir());
  auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  EXPECT_ERROR_MENTIONS(data::validate(path), path, "truncated");
}

TEST(DataSchema, CorruptedChunkNamesTheDataset) {
  auto path = write_images(test::temp_dir(), 4096);
  auto size = std::filesystem::file_size(path);
  {
    // Overwrite bytes in the middle of the file: inside the compressed image chunks.
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2));
    std::string garbage(4096, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  EXPECT_ERROR_MENTIONS(data::validate(path), path, "images");
  EXPECT_NO_THROW(data::validate(path, "", /*read_data=*/false));  // the structure is still intact
}

TEST(DataSchema, NotAnHdf5File) {
  auto path = (test::temp_dir() / "text.h5").string();
  std::ofstream(path) << "this is not an HDF5 file\n";
  EXPECT_ERROR_MENTIONS(data::validate(path), path, "not an HDF5 file");
}

TEST(DataSchema, WrongSchemaIsAnError) {
  auto dir = test::temp_dir();
  auto path = (dir / "s.h5").string();
  {
    auto f = h5::File::create(path);
    h5::write_tensor(f, "images", torch::zeros({2, 1, 4, 4}, torch::kByte));
  }
  EXPECT_ERROR_MENTIONS(data::validate(path), path, "format");
  {
    auto f = h5::File::open(path, h5::Mode::read_write);
    f.set_attr("/", "format", "videos");
    f.set_attr("/", "version", int64_t{1});
  }
  EXPECT_ERROR_MENTIONS(data::validate(path), path, "unknown format 'videos'");
  {
    auto f = h5::File::open(path, h5::Mode::read_write);
    f.set_attr("/", "format", "images");
  }
  EXPECT_ERROR_MENTIONS(data::validate(path), path, "labels", "missing");
  EXPECT_ERROR_MENTIONS(data::validate(write_images(dir), "preference_pairs"), "expected 'preference_pairs'");
}

TEST(DataSchema, WrongShapesAndDtypesAreErrors) {
  auto dir = test::temp_dir();
  auto make = [&](const std::string& name, std::map<std::string, torch::Tensor> tensors, const std::string& format) {
    auto path = (dir / name).string();
    auto f = h5::File::create(path);
    data::write_format_attrs(f, format);
    for (auto& [k, t] : tensors) h5::write_tensor(f, k, t);
    return path;
  };
  auto p1 = make("rank.h5", {{"images", torch::zeros({4, 8, 8}, torch::kByte)}, {"labels", torch::zeros({4}, torch::kLong)}}, "images");
  EXPECT_ERROR_MENTIONS(data::validate(p1), p1, "/images", "dimensions");
  auto p2 = make("dtype.h5", {{"images", torch::zeros({4, 1, 8, 8}, torch::kByte)}, {"labels", torch::zeros({4})}}, "images");
  EXPECT_ERROR_MENTIONS(data::validate(p2), p2, "/labels", "float32", "int64");
  auto p3 = make("rows.h5", {{"images", torch::zeros({4, 1, 8, 8}, torch::kByte)}, {"labels", torch::zeros({5}, torch::kLong)}}, "images");
  EXPECT_ERROR_MENTIONS(data::validate(p3), p3, "/labels", "5 rows");
  auto p4 = make("pairs.h5", {{"winner", torch::zeros({4, 2})}, {"loser", torch::zeros({4, 3})}}, "preference_pairs");
  EXPECT_ERROR_MENTIONS(data::validate(p4), p4, "/loser", "differs from /winner");
  auto p5 = make("kto.h5", {{"samples", torch::zeros({3, 2})}, {"desirable", torch::tensor({0, 1, 2}, torch::kChar)}}, "labelled_samples");
  EXPECT_ERROR_MENTIONS(data::validate(p5), p5, "/desirable", "0 or 1");
  auto p6 = make("nan.h5", {{"points", torch::tensor({{0.f, NAN}})}}, "points");
  EXPECT_ERROR_MENTIONS(data::validate(p6), p6, "/points", "non-finite");
  auto p7 = make("emb.h5", {{"winner", torch::zeros({2, 2})}, {"loser", torch::zeros({2, 2})}, {"text_embedding", torch::zeros({2, 7})}}, "preference_pairs");
  EXPECT_ERROR_MENTIONS(data::validate(p7), p7, "/text_embedding", "expected 3");
}

TEST(DataSchema, EveryFormatTheToolsWriteValidates) {
  // `dualign sample` writes `samples`, data_tools/encode_prompts.py writes `prompts`: both are in the format table.
  auto dir = test::temp_dir();
  auto write = [&](const std::string& name, const std::string& format, std::map<std::string, torch::Tensor> tensors,
                   const std::vector<std::string>& prompts) {
    auto path = (dir / name).string();
    auto f = h5::File::create(path);
    data::write_format_attrs(f, format);
    for (auto& [k, t] : tensors) h5::write_tensor(f, k, t);
    if (!prompts.empty()) f.write_strings("prompt", prompts);
    return path;
  };
  auto samples = write("samples.h5", "samples",
                       {{"samples", torch::randn({3, 4, 8, 8})}, {"prompt_index", torch::tensor({0, 1, 0}, torch::kLong)}},
                       {"a", "b", "a"});
  EXPECT_EQ(data::validate(samples, "samples").rows, 3);
  auto prompts = write("prompts.h5", "prompts", {{"text_embedding", torch::randn({2, 5, 8})}}, {"a", "b"});
  EXPECT_EQ(data::validate(prompts, "prompts").rows, 2);
  auto bad = write("bad_samples.h5", "samples", {{"class_id", torch::zeros({3}, torch::kLong)}}, {});
  EXPECT_ERROR_MENTIONS(data::validate(bad), bad, "/samples", "required");
}

TEST(DataSchema, RecipePairsWithPosteriorsAndAPromptTablePass) {
  auto path = (test::temp_dir() / "recipe.h5").string();
  test::write_recipe_pairs(path, 12);
  auto s = data::validate(path, "preference_pairs");
  EXPECT_EQ(s.rows, 12);  // the tables have their own row counts
  for (auto& d : s.datasets) EXPECT_TRUE(d.known) << d.name;
  auto f = h5::File::open(path);
  EXPECT_EQ(f.info("winner").dtype, h5::DType::f16);
  EXPECT_EQ(data::sample_fields(f).size(), 9u) << "prompt_embedding and empty_prompt_embedding are tables";
}

TEST(DataSchema, BrokenPromptTablesAndPosteriorsAreErrors) {
  auto dir = test::temp_dir();
  int k = 0;
  // A valid recipe file, then `change` applied to it.
  auto broken = [&](const std::function<void(h5::File&)>& change) {
    auto path = (dir / ("broken" + std::to_string(k++) + ".h5")).string();
    test::write_recipe_pairs(path, 6);
    auto f = h5::File::open(path, h5::Mode::read_write);
    change(f);
    return path;
  };
  auto unlink = [](h5::File& f, const char* name) { H5Ldelete(f.id(), name, H5P_DEFAULT); };
  auto p1 = broken([&](h5::File& f) {
    unlink(f, "prompt_index");
    h5::write_tensor(f, "prompt_index", torch::tensor({0, 1, 2, 3, 4, 5}, torch::kInt));
  });
  EXPECT_ERROR_MENTIONS(data::validate(p1), p1, "/prompt_index", "[0, 5)", "/prompt_embedding");
  auto p2 = broken([&](h5::File& f) { unlink(f, "prompt_index"); });
  EXPECT_ERROR_MENTIONS(data::validate(p2), p2, "/prompt_embedding", "needs /prompt_index");
  auto p3 = broken([&](h5::File& f) { h5::write_tensor(f, "text_embedding", torch::zeros({6, 3, 4})); });
  EXPECT_ERROR_MENTIONS(data::validate(p3), p3, "/text_embedding", "/prompt_embedding", "expected one of them");
  auto p4 = broken([&](h5::File& f) {
    unlink(f, "empty_prompt_embedding");
    h5::write_tensor(f, "empty_prompt_embedding", torch::zeros({2, 3, 4}));
  });
  EXPECT_ERROR_MENTIONS(data::validate(p4), p4, "/empty_prompt_embedding", "one row");
  auto p5 = broken([&](h5::File& f) {
    unlink(f, "empty_prompt_embedding");
    h5::write_tensor(f, "empty_prompt_embedding", torch::zeros({1, 3, 5}));
  });
  EXPECT_ERROR_MENTIONS(data::validate(p5), p5, "/empty_prompt_embedding", "/prompt_embedding");
  auto p6 = broken([&](h5::File& f) {
    unlink(f, "loser_logvar");
    h5::write_tensor(f, "loser_logvar", torch::zeros({6, 1, 2, 2}));  // float32 next to a float16 mean
  });
  EXPECT_ERROR_MENTIONS(data::validate(p6), p6, "/loser_logvar", "differs from /loser");
}

// SDXL shards add a pooled-embedding table on the same prompt_index, its empty-prompt row and per-image time ids.
TEST(DataSchema, SdxlPooledTablesShareThePromptIndex) {
  auto dir = test::temp_dir();
  int k = 0;
  auto sdxl = [&](int64_t pooled_rows, int64_t empty_rows) {
    auto path = (dir / ("sdxl" + std::to_string(k++) + ".h5")).string();
    test::write_recipe_pairs(path, 6);  // 6 pairs, a prompt table of 5 rows
    auto f = h5::File::open(path, h5::Mode::read_write);
    h5::write_tensor(f, "prompt_pooled", torch::zeros({pooled_rows, 7}));
    h5::write_tensor(f, "empty_prompt_pooled", torch::zeros({empty_rows, 7}));
    h5::write_tensor(f, "time_ids_w", torch::zeros({6, 6}));
    h5::write_tensor(f, "time_ids_l", torch::zeros({6, 6}));
    return path;
  };
  auto good = sdxl(5, 1);
  auto s = data::validate(good, "preference_pairs");
  for (auto& d : s.datasets) EXPECT_TRUE(d.known) << d.name;
  auto rows = sdxl(4, 1);
  EXPECT_ERROR_MENTIONS(data::validate(rows), rows, "/prompt_pooled", "4 rows", "/prompt_embedding", "/prompt_index");
  auto empty = sdxl(5, 2);
  EXPECT_ERROR_MENTIONS(data::validate(empty), empty, "/empty_prompt_pooled", "one row");
}

}  // namespace
}  // namespace dualign
