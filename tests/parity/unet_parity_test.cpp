// dualign's UNet2DConditionModel vs diffusers on tiny random models: outputs (max abs 1e-4, fp32) and
// parameter gradients of a fixed MSE loss (max abs difference / max abs reference gradient < 1e-4, per tensor).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/diffusers_io.h"
#include "models/safetensors.h"
#include "models/unet.h"
#include "parity_util.h"

using namespace dualign::models;

namespace {

struct Result {
  double out_err = 0, worst_grad_rel = 0, loss_err = 0;
  std::string worst_grad_name;
};

Result run(const std::string& name, bool checkpointing) {
  torch::manual_seed(0);
  auto unet = load_diffusers_unet(parity_dir() + "/" + name);
  unet->set_gradient_checkpointing(checkpointing);
  auto io = load_safetensors(parity_dir() + "/" + name + "_io.safetensors");
  auto get = [&](const std::string& k) { return io.count(k) ? io.at(k) : torch::Tensor(); };
  auto out = unet->forward(io.at("sample"), io.at("timesteps"), get("encoder_hidden_states"), get("class_labels"),
                           get("text_embeds"), get("time_ids"));
  auto loss = (out - io.at("target")).pow(2).mean();
  loss.backward();
  Result r;
  r.out_err = max_abs(out, io.at("output"));
  r.loss_err = std::abs(loss.item<double>() - io.at("loss").item<double>());
  for (const auto& p : unet->named_parameters()) {
    auto ref = io.at("grad." + p.key());
    EXPECT_TRUE(p.value().grad().defined()) << p.key();
    if (!p.value().grad().defined()) continue;
    double rel = max_abs(p.value().grad(), ref) / std::max(ref.abs().max().item<double>(), 1e-12);
    if (rel > r.worst_grad_rel) { r.worst_grad_rel = rel; r.worst_grad_name = p.key(); }
  }
  std::printf("%s (checkpointing %s): output max abs err %.3e, loss err %.3e, worst grad rel err %.3e (%s)\n",
              name.c_str(), checkpointing ? "on" : "off", r.out_err, r.loss_err, r.worst_grad_rel,
              r.worst_grad_name.c_str());
  return r;
}

void check(const std::string& name) {
  for (bool ckpt : {false, true}) {
    auto r = run(name, ckpt);
    EXPECT_LT(r.out_err, 1e-4) << name;
    EXPECT_LT(r.worst_grad_rel, 1e-4) << name << " worst: " << r.worst_grad_name;
  }
}

}  // namespace

TEST(UNetParity, CrossAttention) { check("cross_attn"); }
TEST(UNetParity, ClassConditionalNoAttention) { check("class_cond"); }
TEST(UNetParity, LinearProjectionTimestepClassEmbedding) { check("linear_proj"); }
TEST(UNetParity, SdxlTextTimeAddedConditioning) { check("text_time"); }

// diffusers' parameter count of every fixture model (summary.json): the built model's and the one from the config.
TEST(UNetParity, ParameterCountsMatchDiffusers) {
  nlohmann::json summary;
  std::ifstream(parity_dir() + "/summary.json") >> summary;
  ASSERT_EQ(summary["param_counts"].size(), 4u);
  for (const auto& [name, count] : summary["param_counts"].items()) {
    auto unet = load_diffusers_unet(parity_dir() + "/" + name);
    EXPECT_EQ(unet->num_parameters(), count.get<int64_t>()) << name;
    EXPECT_EQ(unet_parameter_count(unet->config()), count.get<int64_t>()) << name;
  }
}

// Export back to diffusers layout: the same tensor names, shapes and values as diffusers' own file.
TEST(UNetParity, ExportRoundTrip) {
  const std::string src = parity_dir() + "/cross_attn";
  auto unet = load_diffusers_unet(src);
  auto dir = std::filesystem::temp_directory_path() / ("dualign_export_" + std::to_string(::getpid()));
  save_diffusers_unet(*unet, dir.string());
  auto theirs = load_safetensors(src + "/diffusion_pytorch_model.safetensors");
  auto ours = load_safetensors((dir / "diffusion_pytorch_model.safetensors").string());
  ASSERT_EQ(theirs.size(), ours.size());
  for (const auto& [k, v] : theirs) {
    ASSERT_TRUE(ours.count(k)) << k;
    EXPECT_TRUE(torch::equal(v, ours.at(k))) << k;
  }
  auto again = load_diffusers_unet(dir.string());  // our config.json parses back to the same architecture
  EXPECT_EQ(again->num_parameters(), unet->num_parameters());
  // diffusers itself loads the export and reproduces the reference output.
  const char* python = std::getenv("DUALIGN_PYTHON");
  ASSERT_NE(python, nullptr) << "DUALIGN_PYTHON not set";
  const std::string script =
      "import sys, torch\n"
      "from diffusers import UNet2DConditionModel\n"
      "from safetensors.torch import load_file\n"
      "m = UNet2DConditionModel.from_pretrained(sys.argv[1])\n"
      "io = load_file(sys.argv[2])\n"
      "with torch.no_grad():\n"
      "    out = m(io['sample'], io['timesteps'], encoder_hidden_states=io['encoder_hidden_states']).sample\n"
      "err = (out - io['output']).abs().max().item()\n"
      "print('diffusers on dualign export: max abs err', err)\n"
      "sys.exit(0 if err < 1e-5 else 1)\n";
  const auto script_path = dir / "check.py";
  std::ofstream(script_path) << script;
  const std::string cmd = std::string(python) + " " + script_path.string() + " " + dir.string() + " " + parity_dir() +
                          "/cross_attn_io.safetensors";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::filesystem::remove_all(dir);
}
