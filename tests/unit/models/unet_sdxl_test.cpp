// SDXL's UNet: the text_time added conditioning (pooled text embedding + time ids), per-block transformer depths
// reversed for the up blocks, the parameter count from the config (checked against built models, and SDXL base's
// against diffusers' 2,567,463,684), and the conditioning plumbing through data::Condition and the score model.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "dist/memory_plan.h"
#include "models/score_model.h"
#include "models/unet.h"
#include "models/unet_config.h"
#include "util/error.h"

using namespace dualign;
using namespace dualign::models;

namespace {

// SDXL's layout at toy width: a plain first block, transformer depths 1, 2, 3, per-block heads, linear projections,
// a pooled text embedding of 10 and 6 time ids of width 4.
const char* kTinySdxl =
    "kind: unet\nsample_size: 8\nin_channels: 4\nout_channels: 4\n"
    "down_block_types: [DownBlock2D, CrossAttnDownBlock2D, CrossAttnDownBlock2D]\n"
    "up_block_types: [CrossAttnUpBlock2D, CrossAttnUpBlock2D, UpBlock2D]\nblock_out_channels: [8, 16, 32]\n"
    "layers_per_block: 2\nnorm_num_groups: 8\ncross_attention_dim: 12\nattention_head_dim: [1, 2, 4]\n"
    "transformer_layers_per_block: [1, 2, 3]\nuse_linear_projection: true\naddition_embed_type: text_time\n"
    "addition_time_embed_dim: 4\nprojection_class_embeddings_input_dim: 34\n";

UNetConfig tiny_sdxl() { return UNetConfig::from_yaml(YAML::Load(kTinySdxl), "tiny_sdxl", {"kind"}); }

std::string source_dir() {
  const char* d = std::getenv("DUALIGN_SOURCE_DIR");
  return d ? d : ".";
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(UNetSdxl, BaseConfigHasDiffusersParameterCount) {
  const auto yaml = UNetConfig::from_file(source_dir() + "/configs/model/unet_sdxl.yaml");
  EXPECT_EQ(yaml.to_json(), UNetConfig::sdxl_base().to_json());
  // diffusers: sum(p.numel()) of UNet2DConditionModel(**config) for stable-diffusion-xl-base-1.0's unet/config.json
  EXPECT_EQ(unet_parameter_count(yaml), 2'567'463'684);
  auto sd15 = UNetConfig::from_file(source_dir() + "/configs/model/unet_sd15.yaml");
  EXPECT_EQ(unet_parameter_count(sd15), 859'520'964);
  // the memory planner's table (dist cannot see the models) agrees
  EXPECT_EQ(dist::model_spec("sdxl").params, unet_parameter_count(UNetConfig::sdxl_base()));
  EXPECT_EQ(dist::model_spec("sd15").params, unet_parameter_count(sd15));
}

// The count from the config is what the constructor builds, for every feature the count covers.
TEST(UNetSdxl, ParameterCountMatchesBuiltModels) {
  std::vector<UNetConfig> configs{tiny_sdxl()};
  UNetConfig conv = tiny_sdxl();  // 1x1-convolution projections, no added conditioning, timestep class embedding
  conv.use_linear_projection = false;
  conv.addition_embed_type.clear();
  conv.projection_class_embeddings_input_dim.reset();
  conv.class_embed_type = "timestep";
  configs.push_back(conv);
  UNetConfig classes = conv;  // a class table, mid block without attention, padding 0 downsampling
  classes.class_embed_type.clear();
  classes.num_class_embeds = 5;
  classes.mid_block_type = "UNetMidBlock2D";
  classes.downsample_padding = 0;
  configs.push_back(classes);
  UNetConfig no_mid = classes;
  no_mid.mid_block_type.clear();
  configs.push_back(no_mid);
  for (const auto& c : configs) EXPECT_EQ(unet_parameter_count(c), UNet2DConditionModel(c)->num_parameters());
}

TEST(UNetSdxl, DiffusersNamesWithReversedTransformerDepths) {
  UNet2DConditionModel unet(tiny_sdxl());
  const auto names = unet->named_parameters().keys();
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  for (const char* expected :
       {"add_embedding.linear_1.weight", "add_embedding.linear_2.bias",
        "down_blocks.1.attentions.1.transformer_blocks.1.attn2.to_k.weight",
        "down_blocks.2.attentions.0.transformer_blocks.2.ff.net.2.weight",
        "mid_block.attentions.0.transformer_blocks.2.norm3.weight",
        "up_blocks.0.attentions.2.transformer_blocks.2.attn1.to_q.weight",  // depth 3 at the deepest up block
        "up_blocks.1.attentions.2.transformer_blocks.1.attn1.to_q.weight", "up_blocks.2.resnets.2.conv2.weight"})
    EXPECT_TRUE(has(expected)) << expected;
  for (const char* absent : {"down_blocks.0.attentions.0.norm.weight", "down_blocks.1.attentions.0.transformer_blocks.2.norm1.weight",
                             "up_blocks.1.attentions.0.transformer_blocks.2.norm1.weight", "up_blocks.2.attentions.0.norm.weight"})
    EXPECT_FALSE(has(absent)) << absent;
  // [pooled 10, 6 time ids x 4] → add_embedding's input width
  EXPECT_EQ(unet->named_parameters()["add_embedding.linear_1.weight"].sizes(), (std::vector<int64_t>{32, 34}));
}

TEST(UNetSdxl, AddedConditioningChangesTheOutputAndIsRequired) {
  torch::manual_seed(0);
  UNet2DConditionModel unet(tiny_sdxl());
  auto x = torch::randn({2, 4, 8, 8}), t = torch::tensor({10, 700}), ctx = torch::randn({2, 3, 12});
  auto pooled = torch::randn({2, 10});
  auto ids = torch::tensor({{1024.f, 1024.f, 0.f, 0.f, 1024.f, 1024.f}, {768.f, 1344.f, 16.f, 48.f, 1024.f, 1024.f}});
  auto out = unet->forward(x, t, ctx, {}, pooled, ids);
  EXPECT_EQ(out.sizes(), x.sizes());
  auto other_ids = ids.clone();
  other_ids[0][2] = 64.f;  // another crop for the first row only
  auto moved = unet->forward(x, t, ctx, {}, pooled, other_ids);
  EXPECT_GT((moved[0] - out[0]).abs().max().item<double>(), 1e-6);
  EXPECT_LT((moved[1] - out[1]).abs().max().item<double>(), 1e-6);

  auto missing = error_of([&] { unet->forward(x, t, ctx, {}, pooled, {}); });
  EXPECT_NE(missing.find("missing: time_ids"), std::string::npos) << missing;
  missing = error_of([&] { unet->forward(x, t, ctx); });
  EXPECT_NE(missing.find("text_embeds"), std::string::npos) << missing;
  auto wrong = error_of([&] { unet->forward(x, t, ctx, {}, torch::randn({2, 11}), ids); });
  EXPECT_NE(wrong.find("projection_class_embeddings_input_dim"), std::string::npos) << wrong;
}

TEST(UNetSdxl, CheckpointingGivesSameGradients) {
  torch::manual_seed(1);
  UNet2DConditionModel unet(tiny_sdxl());
  auto x = torch::randn({2, 4, 8, 8}), ctx = torch::randn({2, 3, 12});
  auto pooled = torch::randn({2, 10}).requires_grad_(true);
  auto ids = torch::tensor({{64.f, 64.f, 0.f, 0.f, 64.f, 64.f}, {32.f, 96.f, 8.f, 0.f, 64.f, 64.f}});
  auto grads = [&](bool ckpt) {
    unet->set_gradient_checkpointing(ckpt);
    unet->zero_grad();
    pooled.mutable_grad() = torch::Tensor();
    unet->forward(x, torch::tensor({3, 700}), ctx, {}, pooled, ids).pow(2).mean().backward();
    std::vector<torch::Tensor> g{pooled.grad().clone()};
    for (auto& p : unet->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  auto plain = grads(false), ckpt = grads(true);
  ASSERT_EQ(plain.size(), ckpt.size());
  for (size_t i = 0; i < plain.size(); ++i)
    EXPECT_LT((plain[i] - ckpt[i]).abs().max().item<double>(), 1e-6 * (1 + plain[i].abs().max().item<double>())) << i;
}

TEST(UNetSdxl, ConfigErrorsNameTheKey) {
  auto node = YAML::Load(kTinySdxl);
  node.remove("addition_time_embed_dim");
  auto e = error_of([&] { UNetConfig::from_yaml(node, "m.yaml", {"kind"}); });
  EXPECT_NE(e.find("addition_time_embed_dim"), std::string::npos) << e;
  node = YAML::Load(kTinySdxl);
  node["addition_embed_type"] = "text";
  e = error_of([&] { UNetConfig::from_yaml(node, "m.yaml", {"kind"}); });
  EXPECT_NE(e.find("addition_embed_type 'text' not supported"), std::string::npos) << e;
  node = YAML::Load(kTinySdxl);
  node.remove("addition_embed_type");
  e = error_of([&] { UNetConfig::from_yaml(node, "m.yaml", {"kind"}); });
  EXPECT_NE(e.find("projection_class_embeddings_input_dim is used only with"), std::string::npos) << e;
  // to_json round-trips the added-conditioning keys
  EXPECT_EQ(UNetConfig::from_json(tiny_sdxl().to_json()).to_json(), tiny_sdxl().to_json());
}

// data::Condition carries the pooled embedding and time ids through slice / repeat / select / concat / to.
TEST(UNetSdxl, ConditionCarriesAddedConditioning) {
  data::Condition c;
  c.text = torch::randn({3, 2, 4});
  c.text_pooled = torch::arange(6, torch::kFloat32).reshape({3, 2});
  c.time_ids = torch::arange(18, torch::kFloat32).reshape({3, 6});
  auto s = c.slice(1, 2);
  EXPECT_TRUE(torch::equal(s.text_pooled, c.text_pooled.narrow(0, 1, 2)));
  EXPECT_TRUE(torch::equal(s.time_ids, c.time_ids.narrow(0, 1, 2)));
  auto r = c.repeat(2);
  EXPECT_EQ(r.text_pooled.size(0), 6);
  EXPECT_TRUE(torch::equal(r.time_ids.narrow(0, 3, 3), c.time_ids));
  auto sel = c.select(torch::tensor({2, 0}));
  EXPECT_TRUE(torch::equal(sel.time_ids[0], c.time_ids[2]));
  auto cat = data::Condition::concat(s, c);
  EXPECT_EQ(cat.text_pooled.size(0), 5);
  EXPECT_TRUE(c.to(torch::kCPU).time_ids.defined());
  EXPECT_FALSE(c.to(torch::kCPU).class_id.defined());
  data::Condition no_pooled = c;
  no_pooled.text_pooled = torch::Tensor();
  auto e = error_of([&] { data::Condition::concat(no_pooled, c); });
  EXPECT_NE(e.find("pooled text embeddings"), std::string::npos) << e;
}

// The UNet score model passes the added conditioning on and names what a batch lacks.
TEST(UNetSdxl, ScoreModelPassesAddedConditioning) {
  config::Composed composed;
  std::string indented;
  std::stringstream in(kTinySdxl);
  for (std::string line; std::getline(in, line);) indented += "  " + line + "\n";
  composed.config = composed.resolved = YAML::Load("model:\n" + indented);
  torch::manual_seed(2);
  auto model = build_score_model(config::Config(std::move(composed)).section("model"), torch::kCPU);
  auto x = torch::randn({2, 4, 8, 8}), t = torch::tensor({5, 600});
  data::Condition cond;
  cond.text = torch::randn({2, 3, 12});
  cond.text_pooled = torch::randn({2, 10});
  cond.time_ids = torch::full({2, 6}, 64.f);
  auto& unet = dynamic_cast<UNet2DConditionModelImpl&>(model->module());
  EXPECT_TRUE(torch::equal(model->forward(x, t, cond), unet.forward(x, t, cond.text, {}, cond.text_pooled, cond.time_ids)));
  auto no_ids = cond;
  no_ids.time_ids = torch::Tensor();
  auto e = error_of([&] { model->forward(x, t, no_ids); });
  EXPECT_NE(e.find("no time_ids"), std::string::npos) << e;
  auto neither = no_ids;
  neither.text_pooled = torch::Tensor();
  e = error_of([&] { model->forward(x, t, neither); });
  EXPECT_NE(e.find("text_pooled"), std::string::npos) << e;
}
