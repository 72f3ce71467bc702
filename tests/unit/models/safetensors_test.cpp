#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "models/diffusers_io.h"
#include "models/safetensors.h"
#include "util/error.h"

using namespace dualign::models;
namespace fs = std::filesystem;

namespace {
fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() / (std::to_string(::getpid()) + "_" + name);
}
std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
std::string with_header(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}
// Expect a dualign::Error whose message contains `needle`.
void expect_error(const std::string& bytes, const std::string& needle) {
  try {
    parse_safetensors(bytes, "test.safetensors");
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const dualign::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(Safetensors, RoundTripF32F16BF16) {
  TensorMap tensors{{"a", torch::randn({3, 4})},
                    {"b.half", torch::randn({5}).to(torch::kFloat16)},
                    {"c.bf16", torch::randn({2, 2, 2}).to(torch::kBFloat16)},
                    {"scalar", torch::tensor(3.5f).reshape({})},
                    {"empty", torch::zeros({0, 3})}};
  auto path = temp_file("rt.safetensors");
  save_safetensors(path.string(), tensors, {{"format", "pt"}});
  std::map<std::string, std::string> meta;
  auto back = load_safetensors(path.string(), &meta);
  EXPECT_EQ(meta["format"], "pt");
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [k, v] : tensors) {
    EXPECT_EQ(back.at(k).scalar_type(), v.scalar_type()) << k;
    EXPECT_TRUE(torch::equal(back.at(k), v)) << k;
  }
  // header length keeps the data 8-byte aligned
  auto bytes = read_all(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  EXPECT_EQ((8 + n) % 8, 0u);
  fs::remove(path);
}

TEST(Safetensors, CorruptInputsAreErrorsNotCrashes) {
  expect_error("", "shorter than the 8-byte");
  expect_error(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "exceeds the file");
  expect_error(with_header("{not json"), "not valid JSON");
  expect_error(with_header("[1,2]"), "must be a JSON object");
  expect_error(with_header(R"({"x": {"dtype": "F32", "shape": [2]}})"), "needs dtype");
  expect_error(with_header(R"({"x": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 4]}})", std::string(4, '\0')),
               "unsupported dtype 'Q4'");
  expect_error(with_header(R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})", std::string(8, '\0')),
               "outside the data section");
  expect_error(with_header(R"({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", std::string(8, '\0')),
               "needs 12");
  expect_error(with_header(R"({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", std::string(4, '\0')),
               "negative");
  expect_error(with_header(R"({"x": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 4]}})",
                           std::string(4, '\0')),
               "overflows");
  // truncated file: a valid file cut in half
  auto path = temp_file("trunc.safetensors");
  save_safetensors(path.string(), {{"w", torch::randn({64})}});
  auto bytes = read_all(path);
  expect_error(bytes.substr(0, bytes.size() / 2), "outside the data section");
  fs::remove(path);
  EXPECT_THROW(load_safetensors("/nonexistent/x.safetensors"), dualign::Error);
}

TEST(Safetensors, StateDictMismatchListsNames) {
  torch::nn::Sequential net(torch::nn::Linear(3, 4), torch::nn::Linear(4, 2));
  auto sd = state_dict(*net);
  sd.erase("1.bias");                   // missing
  sd["2.weight"] = torch::zeros({1});   // unexpected
  sd["0.weight"] = torch::zeros({4, 4});  // mis-shaped
  try {
    load_state_dict(*net, sd, "weights.safetensors");
    FAIL() << "expected an error";
  } catch (const dualign::Error& e) {
    std::string msg = e.what();
    for (const char* s : {"weights.safetensors", "1 missing [1.bias]", "1 unexpected [2.weight]", "0.weight (file [4, 4], model [4, 3])"})
      EXPECT_NE(msg.find(s), std::string::npos) << "'" << s << "' not in: " << msg;
  }
  // F16 weights load into an F32 model (cast)
  auto good = state_dict(*net);
  TensorMap half;
  for (auto& [k, v] : good) half[k] = (v.detach() + 1).to(torch::kFloat16);
  load_state_dict(*net, half, "half");
  EXPECT_TRUE(torch::allclose(net->named_parameters()["0.bias"], half["0.bias"].to(torch::kFloat32)));
}
