// dualign plan's model-state formulas against worked numbers of ZeRO's accounting (16Ψ, 4Ψ + 12Ψ/N, ...).
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

TEST(DistMemoryPlan, ModelStatesMatchSystemsNotes) {
  // DDP + AdamW: 16 Psi -> 13.8 GB (SD-1.5), 41.1 GB (SDXL).
  EXPECT_NEAR(plan_memory(input("sd15", 0, Precision::bf16, 8)).model_states_gb(), 13.75, 0.05);
  EXPECT_NEAR(plan_memory(input("sdxl", 0, Precision::bf16, 8)).model_states_gb(), 41.08, 0.05);
  // ZeRO-1, N=8, fp32 grad accumulation: 2 Psi + 4 Psi + 12 Psi/N -> 6.4 GB / 19.3 GB.
  EXPECT_NEAR(plan_memory(input("sd15", 1, Precision::bf16, 8)).model_states_gb(), 6.45, 0.05);
  EXPECT_NEAR(plan_memory(input("sdxl", 1, Precision::bf16, 8)).model_states_gb(), 19.26, 0.05);
  // ZeRO-2-style, N=8: 2 Psi + 2 Psi + 16 Psi/N -> 5.2 GB / 15.4 GB.
  EXPECT_NEAR(plan_memory(input("sd15", 2, Precision::bf16, 8)).model_states_gb(), 5.16, 0.05);
  EXPECT_NEAR(plan_memory(input("sdxl", 2, Precision::bf16, 8)).model_states_gb(), 15.40, 0.05);
}

TEST(DistMemoryPlan, DpoAddsReferenceAndPairActivations) {
  auto sft = plan_memory(input("sd15", 0, Precision::bf16, 8, false));
  auto dpo = plan_memory(input("sd15", 0, Precision::bf16, 8, true));
  EXPECT_NEAR(dpo.reference_gb, 1.72, 0.01);  // bf16 frozen copy
  EXPECT_DOUBLE_EQ(dpo.act_ckpt_gb, 2 * sft.act_ckpt_gb);
  EXPECT_GT(dpo.act_full_gb, dpo.act_ckpt_gb);
  // §B4: SD-1.5 DPO with DDP fits 40 GB with checkpointing (~24 GB).
  EXPECT_NEAR(dpo.total_ckpt_gb(), 23.5, 1.0);
}

TEST(DistMemoryPlan, CountsAndErrors) {
  EXPECT_EQ(model_spec("860M").params, 860'000'000);
  EXPECT_EQ(model_spec("2.6B").params, 2'600'000'000);
  EXPECT_EQ(model_spec("12345").params, 12345);
  EXPECT_THROW(model_spec("unet-huge"), std::exception);
  auto bad = input("sd15", 3, Precision::bf16, 8);
  EXPECT_THROW(plan_memory(bad), std::exception);
  EXPECT_NE(format_plan_table({input("sdxl", 1, Precision::bf16, 8)}, 40).find("!"), std::string::npos);
}

TEST(DistMemoryPlan, LoraBudgetsOnlyTheAdaptersAndSharesTheBaseAsReference) {
  auto in = input("sd15", 0, Precision::bf16, 8, true);
  in.trainable_params = 797'184;  // rank 4 on SD-1.5's attention projections
  auto lora = plan_memory(in);
  EXPECT_DOUBLE_EQ(lora.reference_gb, 0.0);                     // the frozen base is the reference
  EXPECT_NEAR(lora.frozen_gb, 4 * 0.859520964, 1e-6);           // fp32 base
  EXPECT_NEAR(lora.model_states_gb(), 16 * 797'184 / 1e9, 1e-9);  // DDP AdamW on the adapters only
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
