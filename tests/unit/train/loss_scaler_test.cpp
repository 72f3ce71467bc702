// The fp16 loss scale follows torch.cuda.amp.GradScaler's rule and survives a checkpoint exactly.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "train/loss_scaler.h"

using dualign::train::LossScaler;
using dualign::train::LossScaleSettings;

TEST(LossScaler, DisabledScaleIsOneWhateverHappens) {
  LossScaler s;
  EXPECT_FALSE(s.enabled());
  s.update(false);
  s.update(true);
  EXPECT_EQ(s.scale(), 1.0);
}

TEST(LossScaler, BacksOffOnOverflowAndGrowsAfterTheInterval) {
  LossScaler s(LossScaleSettings{.init = 65536, .growth_factor = 2, .backoff_factor = 0.5, .growth_interval = 3});
  EXPECT_EQ(s.scale(), 65536);
  s.update(false);  // overflow: halve, restart the count
  EXPECT_EQ(s.scale(), 32768);
  s.update(true);
  s.update(true);
  EXPECT_EQ(s.scale(), 32768);
  EXPECT_EQ(s.growth_tracker(), 2);
  s.update(false);  // an overflow resets the count of finite steps
  EXPECT_EQ(s.scale(), 16384);
  EXPECT_EQ(s.growth_tracker(), 0);
  for (int i = 0; i < 3; ++i) s.update(true);
  EXPECT_EQ(s.scale(), 32768);
  EXPECT_EQ(s.growth_tracker(), 0);
}

TEST(LossScaler, StateRestoresScaleAndTrackerExactly) {
  LossScaleSettings settings{.growth_interval = 5};
  LossScaler a(settings);
  a.update(false);
  a.update(true);
  a.update(true);
  LossScaler b(settings);
  b.load_state(a.state(), "ckpt.h5");
  EXPECT_EQ(b.scale(), a.scale());
  EXPECT_EQ(b.growth_tracker(), 2);
  for (int i = 0; i < 3; ++i) {
    a.update(true);
    b.update(true);
  }
  EXPECT_EQ(b.scale(), 65536);  // 32768 grown after 5 finite steps, counting the 2 before the checkpoint
  EXPECT_EQ(b.scale(), a.scale());
}

TEST(LossScaler, MissingStateNamesTheCheckpoint) {
  LossScaler s(LossScaleSettings{});
  try {
    s.load_state({{"scale", torch::tensor(2.0, torch::kFloat64)}}, "run/ckpt/ckpt-00000010.h5");
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("ckpt-00000010.h5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("growth_tracker"), std::string::npos) << e.what();
  }
}
