// AutoencoderKL and CLIP tower configs: the parameter counts `dualign plan` uses equal the built modules', and
// configs dualign cannot run are errors naming the key. (Numerical parity with diffusers / transformers is in
// tests/parity/sdtools_parity_test.cpp.)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "models/clip_vision.h"
#include "models/vae.h"
#include "util/error.h"

using namespace dualign;
using namespace dualign::models;

namespace {
int64_t count(const torch::nn::Module& m, const std::string& prefix = "") {
  int64_t n = 0;
  for (const auto& p : m.named_parameters())
    if (p.key().starts_with(prefix)) n += p.value().numel();
  return n;
}

std::string error_of(const nlohmann::json& j) {
  try {
    VaeConfig::from_json(j, "vae.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST(Vae, DecoderParameterCountMatchesTheModule) {
  for (bool variant : {false, true}) {
    VaeConfig c;
    c.block_out_channels = {16, 32, 32};
    c.layers_per_block = variant ? 1 : 2;
    c.norm_num_groups = 8;
    c.use_post_quant_conv = !variant;
    c.mid_block_add_attention = !variant;
    AutoencoderKL vae(c);
    EXPECT_EQ(c.decoder_parameter_count(), count(*vae, "decoder.") + count(*vae, "post_quant_conv."));
  }
  EXPECT_EQ(VaeConfig::stable_diffusion().decoder_parameter_count(), 49'490'199);  // diffusers' SD VAE decoder
}

TEST(Vae, UnsupportedConfigsAreErrorsNamingTheKey) {
  EXPECT_NE(error_of({{"norm_num_groups", 32}, {"block_out_channels", {64}}, {"act_fn", "gelu"}}).find("act_fn"),
            std::string::npos);
  EXPECT_NE(error_of({{"block_out_channels", {64}}, {"down_block_types", {"AttnDownEncoderBlock2D"}}})
                .find("AttnDownEncoderBlock2D"), std::string::npos);
  EXPECT_NE(error_of({{"block_out_channels", {64}}, {"latent_chanels", 4}}).find("latent_chanels"), std::string::npos);
  EXPECT_EQ(error_of({{"block_out_channels", {64}}, {"_class_name", "AutoencoderKL"}, {"force_upcast", true}}),
            "no error");
}

TEST(ClipVision, ParameterCountMatchesTheModule) {
  ClipVisionConfig c;
  c.hidden_size = 32, c.intermediate_size = 48, c.num_hidden_layers = 2, c.num_attention_heads = 4;
  c.image_size = 28, c.patch_size = 7, c.projection_dim = 8;
  ClipVisionModel m(c);
  EXPECT_EQ(c.parameter_count(), count(*m));
  auto out = m->forward(torch::randn({2, 3, 28, 28}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_THROW(m->forward(torch::randn({2, 3, 32, 32})), Error);  // wrong image size
}
