// dualign plan's model-state formulas against worked numbers (Psi = parameter count, in GB per byte). The formulas
// themselves are checked against what the trainer's optimizer really allocates in tests/unit/train/.
#include <gtest/gtest.h>

#include "dist/memory_plan.h"

using namespace dualign::dist;

namespace {
PlanInput input(const std::string& model, int stage, Precision p, int world, bool reference = false) {
  PlanInput in;
  in.model = model_spec(model);
  in.zero_stage = stage;
  in.precision = p;
  in.world_size = world;
  in.frozen_reference = reference;
  in.samples_per_gpu = reference ? 2 : 1;
  return in;
}
}  // namespace

TEST(DistMemoryPlan, ModelStatesOfTheTrainer) {
  // DDP + AdamW in fp32: 16 Psi -> 13.75 GB (SD-1.5). bf16/fp16 autocast keeps fp32 weights, gradients and moments
  // and adds the 2 Psi weight casts: 18 Psi -> 15.47 GB (SD-1.5), 46.21 GB (SDXL).
  EXPECT_NEAR(plan_memory(input("sd15", 0, Precision::fp32, 8)).model_states_gb(), 13.75, 0.01);
  EXPECT_NEAR(plan_memory(input("sd15", 0, Precision::bf16, 8)).model_states_gb(), 15.47, 0.01);
  EXPECT_NEAR(plan_memory(input("sd15", 0, Precision::fp16, 8)).model_states_gb(), 15.47, 0.01);
  EXPECT_NEAR(plan_memory(input("sdxl", 0, Precision::bf16, 8)).model_states_gb(), 46.21, 0.01);
  // dist.reduce_dtype=bf16 adds a bf16 copy of the buckets: 20 Psi.
  auto bf16_wire = input("sd15", 0, Precision::bf16, 8);
  bf16_wire.bf16_reduce = true;
  EXPECT_NEAR(plan_memory(bf16_wire).model_states_gb(), 17.19, 0.01);
  // ZeRO-1/2, N=8: 4 weights + 4 gather buffer + 4 flat gradient + 4/8 gradient shard + 12/8 states = 14 Psi in fp32,
  // + 2 Psi casts in bf16: 12.03 / 13.75 GB (SD-1.5), 41.08 GB (SDXL, bf16).
  for (int stage : {1, 2}) {
    EXPECT_NEAR(plan_memory(input("sd15", stage, Precision::fp32, 8)).model_states_gb(), 12.03, 0.01);
    EXPECT_NEAR(plan_memory(input("sd15", stage, Precision::bf16, 8)).model_states_gb(), 13.75, 0.01);
    EXPECT_NEAR(plan_memory(input("sdxl", stage, Precision::bf16, 8)).model_states_gb(), 41.08, 0.01);
  }
}

TEST(DistMemoryPlan, DpoAddsReferenceAndPairActivations) {
  auto sft = plan_memory(input("sd15", 0, Precision::bf16, 8, false));
  auto dpo_in = input("sd15", 0, Precision::bf16, 8, true);
  auto dpo = plan_memory(dpo_in);
  EXPECT_NEAR(dpo.reference_gb, 3.44, 0.01);  // method.reference_dtype=float32 (the default)
  dpo_in.bf16_reference = true;
  EXPECT_NEAR(plan_memory(dpo_in).reference_gb, 1.72, 0.01);
  EXPECT_DOUBLE_EQ(dpo.act_ckpt_gb, 2 * sft.act_ckpt_gb);
  EXPECT_DOUBLE_EQ(plan_memory(input("sd15", 0, Precision::fp32, 8, true)).act_ckpt_gb, 2 * dpo.act_ckpt_gb);
  EXPECT_GT(dpo.act_full_gb, dpo.act_ckpt_gb);
  // SD-1.5 DPO in bf16 with DDP fits 40 GB with checkpointing: 15.5 + 3.4 + 6 + 2 = 26.9 GB.
  EXPECT_NEAR(dpo.total_ckpt_gb(), 26.9, 0.1);
}

TEST(DistMemoryPlan, CountsAndErrors) {
  EXPECT_EQ(model_spec("860M").params, 860'000'000);
  EXPECT_EQ(model_spec("2.6B").params, 2'600'000'000);
  EXPECT_EQ(model_spec("12345").params, 12345);
  EXPECT_THROW(model_spec("unet-huge"), std::exception);
  auto bad = input("sd15", 3, Precision::bf16, 8);
  EXPECT_THROW(plan_memory(bad), std::exception);
  EXPECT_NE(format_plan_table({input("sdxl", 1, Precision::bf16, 8)}, 40).find("!"), std::string::npos);
  EXPECT_NE(format_plan_table({input("sd15", 1, Precision::fp16, 8)}, 80).find("fp16"), std::string::npos);
}

TEST(DistMemoryPlan, LoraBudgetsOnlyTheAdaptersAndSharesTheBaseAsReference) {
  auto in = input("sd15", 0, Precision::bf16, 8, true);
  in.trainable_params = 797'184;  // rank 4 on SD-1.5's attention projections
  auto lora = plan_memory(in);
  EXPECT_DOUBLE_EQ(lora.reference_gb, 0.0);                     // the frozen base is the reference
  EXPECT_NEAR(lora.frozen_gb, 4 * 0.859520964, 1e-6);           // fp32 base
  // DDP AdamW on the adapters only: fp32 weights + gradients + m, v (16 bytes) and their bf16 casts (2)
  EXPECT_NEAR(lora.model_states_gb(), 18 * 797'184 / 1e9, 1e-9);
  auto full = plan_memory(input("sd15", 0, Precision::bf16, 8, true));
  EXPECT_LT(lora.total_ckpt_gb(), full.total_ckpt_gb() - 10);
  in.reward_params = 632'076'800;
  in.reward_act_gb_per_sample = 1.5;
  auto with_reward = plan_memory(in);
  EXPECT_NEAR(with_reward.frozen_gb - lora.frozen_gb, 4 * 0.6320768, 1e-9);
  EXPECT_DOUBLE_EQ(with_reward.act_ckpt_gb - lora.act_ckpt_gb, 1.5 * in.samples_per_gpu);
  in.trainable_params = in.model.params + 1;
  EXPECT_THROW(plan_memory(in), std::exception);
}

TEST(DistMemoryPlan, AdafactorKeepsItsFactoredStatisticsInsteadOfMoments) {
  // SDXL's UNet: Adafactor's row + col statistics are 244.3 M fp32 elements (0.98 GB) where AdamW keeps 8 Psi
  // (20.5 GB). DDP, bf16: 4 weights + 2 casts + 4 gradients = 10 Psi + 0.98 GB = 26.65 GB (AdamW: 46.21 GB).
  auto ddp = input("sdxl", 0, Precision::bf16, 8);
  ddp.optimizer = Optimizer::adafactor;
  ddp.adafactor_state = ddp.model.adafactor_state;
  EXPECT_EQ(ddp.adafactor_state, 244'330'500);
  EXPECT_NEAR(plan_memory(ddp).optimizer_gb, 0.977, 0.001);
  EXPECT_NEAR(plan_memory(ddp).model_states_gb(), 26.65, 0.01);
  // ZeRO, N=8: 14.5 Psi as for AdamW, + (4 Psi master + the statistics) / 8 = 38.63 GB.
  auto zero = ddp;
  zero.zero_stage = 1;
  EXPECT_NEAR(plan_memory(zero).model_states_gb(), 38.63, 0.01);
  // SD-1.5's 1x1 and 3x3 convolutions keep 2 and 2/3 of their size: 457.6 M elements, 27 % of AdamW's moments.
  EXPECT_EQ(model_spec("sd15").adafactor_state, 457'589'700);
  ddp.adafactor_state = 0;
  EXPECT_THROW(plan_memory(ddp), std::exception);
}
