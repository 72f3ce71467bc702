// LoRA on the UNet's attention projections: exact equality with the base at initialisation, only the adapters
// are trainable (peft names, the analytic count `dualign plan` uses), AdaptersDisabled restores the base after
// training, also under activation checkpointing, and the diffusers export folds alpha / rank into lora_B.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include "config/config.h"
#include "models/diffusers_io.h"
#include "models/lora.h"
#include "models/score_model.h"
#include "models/unet_config.h"
#include "util/error.h"

using namespace dualign;
using namespace dualign::models;

namespace {

const char* kUnet =
    "kind: unet\nsample_size: 8\nin_channels: 4\nout_channels: 4\n"
    "down_block_types: [CrossAttnDownBlock2D, CrossAttnDownBlock2D]\nmid_block_type: UNetMidBlock2DCrossAttn\n"
    "up_block_types: [CrossAttnUpBlock2D, UpBlock2D]\nblock_out_channels: [16, 32]\nlayers_per_block: 1\n"
    "norm_num_groups: 8\ncross_attention_dim: 12\nattention_head_dim: [2, 4]\ntransformer_layers_per_block: [1, 2]\n";

config::Config model_config(const std::string& extra) {
  config::Composed c;
  c.config = c.resolved = YAML::Load(std::string("model:\n") + [&] {
    std::string indented;
    std::stringstream in(std::string(kUnet) + extra);
    for (std::string line; std::getline(in, line);) indented += "  " + line + "\n";
    return indented;
  }());
  return config::Config(std::move(c));
}

std::shared_ptr<ScoreModel> build(const std::string& extra, uint64_t seed = 3) {
  torch::manual_seed(seed);
  return build_score_model(model_config(extra).section("model"), torch::kCPU);
}

struct Inputs {
  torch::Tensor x = torch::randn({2, 4, 8, 8}), t = torch::tensor({10, 700});
  data::Condition cond{{}, torch::randn({2, 3, 12})};
};

void randomize_adapters(ScoreModel& lora) {
  torch::NoGradGuard no_grad;
  for (auto& p : lora.parameters()) p.copy_(0.1 * torch::randn_like(p));
}

}  // namespace

TEST(Lora, AtInitialisationThePolicyEqualsItsBaseExactly) {
  auto lora = build("lora: {rank: 4, alpha: 8}\n");
  auto base = build("");  // same seed: the same base weights
  torch::manual_seed(0);
  Inputs in;
  torch::NoGradGuard no_grad;
  auto y = lora->forward(in.x, in.t, in.cond);
  EXPECT_TRUE(torch::equal(y, base->forward(in.x, in.t, in.cond)));
  EXPECT_TRUE(torch::equal(y, lora->base_view()->forward(in.x, in.t, in.cond)));
}

TEST(Lora, OnlyTheAdaptersAreTrainableUnderPeftNames) {
  auto lora = build("lora: {rank: 3, targets: [to_q, to_v, attn2.to_k, to_out.0]}\n");
  auto names = lora->module().named_parameters().keys();
  ASSERT_FALSE(names.empty());
  for (const auto& n : names) EXPECT_TRUE(n.ends_with(".lora_A.weight") || n.ends_with(".lora_B.weight")) << n;
  EXPECT_NE(std::find(names.begin(), names.end(),
                      "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.lora_A.weight"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(),
                      "down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_k.lora_A.weight"), names.end());
  for (const auto& p : lora->parameters()) EXPECT_TRUE(p.requires_grad());
  int64_t trainable_in_network = 0;  // the UNet's tree holds the adapters too; nothing else may be trainable
  for (const auto& p : lora->base_view()->module().parameters())
    if (p.requires_grad()) trainable_in_network += p.numel();
  EXPECT_EQ(trainable_in_network, lora->num_parameters());
  LoraConfig lc;
  lc.rank = 3;
  lc.targets = {"to_q", "to_v", "attn2.to_k", "to_out.0"};
  EXPECT_EQ(lora->num_parameters(), lora_parameter_count(UNetConfig::from_yaml(YAML::Load(kUnet), "test", {"kind"}), lc));
}

// The widely quoted size of an SD-1.5 attention LoRA: rank 4 on to_q/k/v/out.0 is 797,184 parameters (3.2 MB).
TEST(Lora, AnalyticCountOfStableDiffusion15) {
  UNetConfig sd15;  // UNetConfig's defaults are SD-1.5's but for the text width
  sd15.cross_attention_dim = {768};
  LoraConfig lc;
  lc.rank = 4;
  EXPECT_EQ(lora_parameter_count(sd15, lc), 797'184);
  lc.targets = {"attn2.to_k", "attn2.to_v"};
  // cross-attention k, v (768 → d) of 5 blocks at 320, 5 at 640 and 6 at 1280 channels (down 2+2+2, mid 1, up 3+3+3)
  EXPECT_EQ(lora_parameter_count(sd15, lc), 2 * 4 * (5 * (768 + 320) + 5 * (768 + 640) + 6 * (768 + 1280)));
}

TEST(Lora, DisablingAdaptersGivesTheBaseAfterTrainingAlsoWhenCheckpointed) {
  for (bool ckpt : {false, true}) {
    const std::string flag = ckpt ? "gradient_checkpointing: true\n" : "";
    auto lora = build(flag + "lora: {rank: 2, alpha: 4}\n");
    auto base = build(flag);
    randomize_adapters(*lora);
    torch::manual_seed(1);
    Inputs in;
    auto ref = lora->base_view();
    auto x1 = in.x.clone().requires_grad_(true), x2 = in.x.clone().requires_grad_(true);
    auto y_ref = ref->forward(x1, in.t, in.cond);
    auto y_base = base->forward(x2, in.t, in.cond);
    EXPECT_TRUE(torch::equal(y_ref, y_base)) << "checkpointing " << ckpt;
    EXPECT_GT((lora->forward(in.x, in.t, in.cond) - y_base).abs().max().item<double>(), 1e-4);
    // Backward through the reference recomputes checkpointed blocks: still without adapters.
    y_ref.pow(2).sum().backward();
    y_base.pow(2).sum().backward();
    EXPECT_LE((x1.grad() - x2.grad()).abs().max().item<double>(), 1e-6) << "checkpointing " << ckpt;
    for (const auto& p : lora->parameters()) EXPECT_FALSE(p.grad().defined() && p.grad().abs().sum().item<double>() > 0);
  }
}

TEST(Lora, ALayerComputesWxPlusScaleTimesBAx) {
  torch::manual_seed(5);
  LoraLinear layer(torch::nn::LinearOptions(6, 5));
  auto [a, b] = layer->add_adapter(2, 1.5);
  {
    torch::NoGradGuard no_grad;
    b->weight.normal_();
  }
  auto x = torch::randn({3, 6});
  auto params = layer->named_parameters();
  auto expected = torch::nn::functional::linear(x, params["weight"], params["bias"]) +
                  1.5 * x.matmul(a->weight.t()).matmul(b->weight.t());
  EXPECT_LE((layer->forward(x) - expected).abs().max().item<double>(), 1e-6);
  AdaptersDisabled off;
  EXPECT_TRUE(torch::equal(layer->forward(x), torch::nn::functional::linear(x, params["weight"], params["bias"])));
}

TEST(Lora, DiffusersExportFoldsTheScaleIntoLoraB) {
  auto lora = build("lora: {rank: 4, alpha: 2}\n");
  randomize_adapters(*lora);
  LoraConfig lc;
  lc.rank = 4;
  lc.alpha = 2;
  auto own = state_dict(lora->module());
  auto exported = lora_state_for_diffusers(own, lc);
  ASSERT_EQ(exported.size(), own.size());
  for (const auto& [name, t] : own) {
    const auto& e = exported.at("unet." + name);
    const double factor = name.ends_with("lora_B.weight") ? 0.5 : 1.0;
    EXPECT_TRUE(torch::allclose(e, t * factor)) << name;
  }
}

TEST(Lora, BadSpecificationsAreErrorsNamingTheKey) {
  auto message = [](const std::string& extra) -> std::string {
    try {
      build(extra);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message("lora: {rank: 2, targets: [to_z]}\n").find("to_z"), std::string::npos);
  EXPECT_NE(message("lora: {rank: 0}\n").find("model.lora.rank"), std::string::npos);
  EXPECT_NE(message("lora: {rank: 2, alpah: 3}\n").find("alpah"), std::string::npos);
}
