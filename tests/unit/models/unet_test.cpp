#include <gtest/gtest.h>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include "models/checkpoint.h"
#include "models/unet.h"
#include "models/unet_config.h"
#include "tiny_unet.h"
#include "util/error.h"

using namespace dualign::models;

using test::tiny_unet_config;

TEST(UNet, ShapesAndDiffusersNames) {
  torch::manual_seed(0);
  UNet2DConditionModel unet(tiny_unet_config());
  auto out = unet->forward(torch::randn({2, 4, 8, 8}), torch::tensor({1, 500}), torch::randn({2, 3, 12}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 4, 8, 8}));
  auto names = unet->named_parameters().keys();
  for (const char* expected : {"conv_in.weight", "time_embedding.linear_1.weight",
                               "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                               "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
                               "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.bias",
                               "down_blocks.0.downsamplers.0.conv.weight", "mid_block.attentions.0.proj_in.weight",
                               "mid_block.resnets.1.conv2.weight", "up_blocks.0.upsamplers.0.conv.weight",
                               "up_blocks.1.resnets.1.conv_shortcut.weight", "conv_norm_out.weight", "conv_out.bias"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  EXPECT_THROW(unet->forward(torch::randn({2, 4, 8, 8}), torch::tensor({1, 2})), dualign::Error);  // no context
  EXPECT_THROW(unet->forward(torch::randn({2, 4, 5, 5}), torch::tensor({1, 2}), torch::randn({2, 3, 12})),
               dualign::Error);  // not a multiple of 2
}

// Activation checkpointing recomputes in backward: same output and the same gradients for parameters and inputs.
TEST(UNet, CheckpointingGivesSameGradients) {
  torch::manual_seed(1);
  UNet2DConditionModel unet(tiny_unet_config());
  auto x = torch::randn({2, 4, 8, 8}).requires_grad_(true);
  auto ctx = torch::randn({2, 3, 12}).requires_grad_(true);
  auto t = torch::tensor({3, 700});
  auto grads = [&](bool ckpt) {
    unet->set_gradient_checkpointing(ckpt);
    unet->zero_grad();
    x.mutable_grad() = torch::Tensor();
    ctx.mutable_grad() = torch::Tensor();
    auto out = unet->forward(x, t, ctx);
    out.pow(2).mean().backward();
    std::vector<torch::Tensor> g{out.detach(), x.grad().clone(), ctx.grad().clone()};
    for (auto& p : unet->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  auto plain = grads(false), ckpt = grads(true);
  ASSERT_EQ(plain.size(), ckpt.size());
  for (size_t i = 0; i < plain.size(); ++i)
    EXPECT_LT((plain[i] - ckpt[i]).abs().max().item<double>(), 1e-6 * (1 + plain[i].abs().max().item<double>())) << i;
}

// checkpoint() also works with autograd::grad (no .grad accumulation) and with undefined inputs.
TEST(Checkpoint, AutogradGradAndUndefinedInputs) {
  auto lin = torch::nn::Linear(3, 3);
  auto x = torch::randn({4, 3}).requires_grad_(true);
  BlockFn fn = [&](const std::vector<torch::Tensor>& in) {
    auto h = torch::tanh(lin(in[0]));
    if (in[1].defined()) h = h + in[1];
    return std::vector<torch::Tensor>{h * h};
  };
  auto ref = fn({x, torch::Tensor()})[0].sum();
  auto ref_g = torch::autograd::grad({ref}, {x, lin->weight});
  auto out = checkpoint(fn, {x, torch::Tensor()}, lin->parameters())[0].sum();
  auto g = torch::autograd::grad({out}, {x, lin->weight});
  EXPECT_TRUE(torch::allclose(g[0], ref_g[0]));
  EXPECT_TRUE(torch::allclose(g[1], ref_g[1]));
  EXPECT_FALSE(lin->weight.grad().defined());
  torch::NoGradGuard no_grad;  // without grad mode it is a plain call
  EXPECT_FALSE(checkpoint(fn, {x, torch::Tensor()}, lin->parameters())[0].requires_grad());
}

TEST(UNetConfig, YamlConfigsRejectUnknownKeysAndSkipTheCallersOwn) {
  auto node = YAML::Load("{kind: unet, sample_size: 8, in_channels: 1, out_channels: 1, block_out_channels: [8],"
                         " down_block_types: [DownBlock2D], up_block_types: [UpBlock2D], mid_block_type: UNetMidBlock2D,"
                         " norm_num_groups: 4, layers_per_blok: 1}");
  try {
    UNetConfig::from_yaml(node, "model.yaml", {"kind"});
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("'layers_per_blok'"), std::string::npos) << e.what();
  }
  node.remove("layers_per_blok");
  EXPECT_EQ(UNetConfig::from_yaml(node, "model.yaml", {"kind"}).sample_size, 8);
}
