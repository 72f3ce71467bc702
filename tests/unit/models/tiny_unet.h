// The tiny cross-attention UNet the model tests share: 8x8 samples, two blocks (16 and 32 channels), text width 12.
#pragma once
#include "models/unet_config.h"

namespace dualign::models::test {

inline UNetConfig tiny_unet_config() {
  UNetConfig c;
  c.sample_size = 8;
  c.block_out_channels = {16, 32};
  c.down_block_types = {"CrossAttnDownBlock2D", "DownBlock2D"};
  c.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D"};
  c.layers_per_block = 1;
  c.norm_num_groups = 8;
  c.cross_attention_dim = {12};
  c.num_attention_heads = {2};
  return c;
}

}  // namespace dualign::models::test
