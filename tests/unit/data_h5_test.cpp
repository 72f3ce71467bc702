// HDF5 wrapper: round trips of every stored type, row reads, attributes, and errors that name file + dataset.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "data/h5.h"
#include "data/h5_tensor.h"
#include "data_test_util.h"

namespace dualign {
namespace {

TEST(DataH5, RoundTripsNumbersStringsAndAttributes) {
  auto path = (test::temp_dir() / "a.h5").string();
  {
    auto f = h5::File::create(path);
    std::vector<float> x(3 * 4);
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5f * static_cast<float>(i);
    f.write("group/x", h5::DType::f32, {3, 4}, x.data(), {1, 4});
    h5::write_vector<int64_t>(f, "ids", {7, -3, 1LL << 40});
    f.write_strings("prompt", {"a cat", "", "ünïcode ✓"});
    f.set_attr("/", "format", "images");
    f.set_attr("/", "version", int64_t{1});
    f.set_attr("group/x", "scale", 0.25);
    f.close();
  }
  auto f = h5::File::open(path);
  EXPECT_TRUE(f.exists("group/x"));
  EXPECT_FALSE(f.exists("group/missing/deeper"));
  EXPECT_TRUE(f.is_group("group"));
  EXPECT_EQ(f.list("/"), (std::vector<std::string>{"group", "ids", "prompt"}));
  auto info = f.info("group/x");
  EXPECT_EQ(info.dtype, h5::DType::f32);
  EXPECT_EQ(info.shape, (std::vector<int64_t>{3, 4}));
  auto x = h5::read_vector<float>(f, "group/x");
  EXPECT_FLOAT_EQ(x[11], 5.5f);
  std::vector<float> rows(2 * 4);
  f.read_rows("group/x", h5::DType::f32, std::vector<int64_t>{2, 0}, rows.data());
  EXPECT_FLOAT_EQ(rows[0], 4.0f);  // row 2 first
  EXPECT_FLOAT_EQ(rows[4], 0.0f);
  EXPECT_EQ(h5::read_vector<int64_t>(f, "ids"), (std::vector<int64_t>{7, -3, 1LL << 40}));
  EXPECT_EQ(f.read_strings("prompt"), (std::vector<std::string>{"a cat", "", "ünïcode ✓"}));
  EXPECT_EQ(f.read_strings("prompt", {2, 0}), (std::vector<std::string>{"ünïcode ✓", "a cat"}));
  EXPECT_EQ(f.attr_string("/", "format"), "images");
  EXPECT_EQ(f.attr_int("/", "version"), 1);
  EXPECT_DOUBLE_EQ(f.attr_double("group/x", "scale"), 0.25);
}

TEST(DataH5, TensorsKeepTheirDtypeIncludingBfloat16AndBool) {
  auto path = (test::temp_dir() / "t.h5").string();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  std::map<std::string, torch::Tensor> tensors = {
      {"f32", torch::randn({5, 3}, gen)},
      {"bf16", torch::randn({4, 2}, gen).to(torch::kBFloat16)},
      {"f16", torch::randn({6}, gen).to(torch::kHalf)},
      {"bool", torch::rand({7}, gen) > 0.5},
      {"i64", torch::arange(10)},
      {"u8", torch::randint(255, {2, 1, 3, 3}, gen, torch::kByte)},
      {"scalar", torch::tensor(3.5)}};
  {
    auto f = h5::File::create(path);
    for (auto& [k, t] : tensors) h5::write_tensor(f, "g/" + k, t, {0, k == "u8" ? 4 : 0});
  }
  auto f = h5::File::open(path);
  for (auto& [k, t] : tensors) {
    auto r = h5::read_tensor(f, "g/" + k);
    EXPECT_EQ(r.scalar_type(), t.scalar_type()) << k;
    EXPECT_TRUE(torch::equal(r, t)) << k;
  }
  auto rows = h5::read_tensor_rows(f, "g/u8", {1, 1, 0});
  EXPECT_TRUE(torch::equal(rows[0], tensors["u8"][1]));
  EXPECT_TRUE(torch::equal(rows[2], tensors["u8"][0]));
}

TEST(DataH5, Float16IsIeeeHalfThatReadsAsAnyFloat) {
  auto path = (test::temp_dir() / "half.h5").string();
  auto values = torch::tensor({0.5f, -2.25f, 65504.f, 6.1035156e-05f, -0.0f}).to(torch::kHalf);
  {
    auto f = h5::File::create(path);
    h5::write_tensor(f, "h", values, {2, 4});
  }
  auto f = h5::File::open(path);
  EXPECT_EQ(f.info("h").dtype, h5::DType::f16);
  EXPECT_FALSE(f.has_attr("h", "torch_dtype"));
  std::vector<double> wide(5);
  f.read("h", h5::DType::f64, wide.data());  // HDF5 converts half -> double
  for (int i = 0; i < 5; ++i) EXPECT_EQ(wide[i], values[i].item<double>()) << i;
  EXPECT_TRUE(torch::equal(h5::read_tensor_rows(f, "h", {4, 1}), values.index({torch::tensor({4, 1})})));
}

TEST(DataH5, ErrorsNameTheFileAndTheDataset) {
  auto path = (test::temp_dir() / "e.h5").string();
  {
    auto f = h5::File::create(path);
    h5::write_vector<float>(f, "x", {1, 2, 3});
    f.set_attr("/", "version", "one");
  }
  ::testing::internal::CaptureStderr();  // HDF5's own error-stack printing must be silenced
  auto f = h5::File::open(path);
  EXPECT_ERROR_MENTIONS(f.info("nope"), path, "nope");
  EXPECT_ERROR_MENTIONS(f.attr_int("/", "version"), path, "version", "integer");
  EXPECT_ERROR_MENTIONS(f.attr_string("/", "format"), path, "format");
  std::vector<float> out(10);
  EXPECT_ERROR_MENTIONS(f.read_rows("x", h5::DType::f32, 2, 5, out.data()), path, "x", "out of range");
  EXPECT_ERROR_MENTIONS(h5::File::open(path + ".missing"), "no such file");
  // Writing into a read-only file is an HDF5 failure converted to an Error (HDF5 prints nothing).
  EXPECT_ERROR_MENTIONS(h5::write_vector<float>(f, "y", {1}), path, "y");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace dualign
