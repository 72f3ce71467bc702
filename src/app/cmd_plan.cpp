// `dualign plan`: per-GPU memory estimate for a model x method x ZeRO stage x precision x world size, so
// users see what fits SD-1.5 and SDXL before they queue a job (formulas: dist/memory_plan.h). --lora-rank budgets
// LoRA (adapter counts from the UNet architecture, models/lora.h); --reward adds the frozen reward towers and the
// VAE decoder of reward back-propagation (their exact parameter counts) and their activations.
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "app/commands.h"
#include "dist/memory_plan.h"
#include "methods/registry.h"
#include "models/clip_vision.h"
#include "models/lora.h"
#include "models/unet.h"
#include "models/unet_config.h"
#include "models/vae_config.h"
#include "util/error.h"

namespace dualign::app {
namespace {

struct PlanArgs {
  std::string model = "sd15";
  std::string method = "dpo";
  int world = 8;
  std::vector<int> zero{0, 1, 2};
  std::vector<std::string> precision{"fp32", "bf16", "fp16"};
  std::string reference_dtype = "float32";
  std::string reduce_dtype = "fp32";
  std::string optimizer = "adamw";
  bool adafactor_beta1 = false;
  int micro_batch = 1;
  double gpu_gb = 80;
  double act_gb = -1;
  double nockpt_factor = 4;
  double workspace_gb = 2;
  int lora_rank = 0;
  std::vector<std::string> lora_targets{"to_q", "to_k", "to_v", "to_out.0"};
  int64_t lora_params = 0;
  std::vector<std::string> rewards;
  double reward_act_gb = 1.5;
};

// The UNet architectures behind `--model sd15 | sdxl`; their configs give the parameter and LoRA counts.
models::UNetConfig unet_of(const std::string& model) {
  if (model == "sdxl") return models::UNetConfig::sdxl_base();
  DUALIGN_CHECK(model == "sd15", "plan: the UNet architectures known are sd15 and sdxl, not '{}'", model);
  models::UNetConfig c;  // the defaults are SD-1.5's, except the text width
  c.cross_attention_dim = {768};
  return c;
}

bool known_unet(const std::string& model) { return model == "sd15" || model == "sdxl"; }

// Frozen parameters of one reward's networks: its image tower (the VAE decoder is counted once, by the caller).
int64_t reward_tower_params(const std::string& name) {
  if (name == "pickscore" || name == "hpsv2") return models::ClipVisionConfig::vit_h14().parameter_count();
  if (name == "clip_score" || name == "aesthetic") return models::ClipVisionConfig::vit_l14().parameter_count();
  DUALIGN_CHECK(name == "brightness" || name == "global_contrast" || name == "local_contrast" || name == "saturation" ||
                    name == "colorfulness",
                "plan: --reward '{}' (expected pickscore, hpsv2, clip_score, aesthetic or an image statistic)", name);
  return 0;
}

void run_plan(const PlanArgs& a) {
  auto model = dist::model_spec(a.model);
  if (known_unet(a.model)) model.params = models::unet_parameter_count(unet_of(a.model));
  if (a.act_gb > 0) model.act_gb_per_sample_ckpt = a.act_gb;
  int64_t trainable = a.lora_params;
  if (a.lora_rank > 0 && trainable == 0) {
    DUALIGN_CHECK(known_unet(a.model), "plan: LoRA counts are known for sd15 and sdxl; for '{}' pass --lora-params",
                  a.model);
    models::LoraConfig lora;
    lora.rank = a.lora_rank;
    lora.targets = a.lora_targets;
    trainable = models::lora_parameter_count(unet_of(a.model), lora);
  }
  int64_t reward_params = 0;
  std::set<std::string> towers;  // CLIP score and aesthetic share ViT-L/14; PickScore and HPSv2 differ
  for (const auto& r : a.rewards) {
    const bool h14 = r == "pickscore" || r == "hpsv2";
    if (h14 ? towers.insert(r).second : towers.insert("vit_l14").second) reward_params += reward_tower_params(r);
    if (r == "aesthetic") reward_params += 927'969;  // its MLP head: 768→1024→128→64→16→1 with biases
  }
  if (!a.rewards.empty()) reward_params += models::VaeConfig::stable_diffusion().decoder_parameter_count();
  const auto& traits = methods::find_method(a.method, "plan --method").traits;
  if (a.reference_dtype != "float32" && a.reference_dtype != "bfloat16")
    fail("plan: --reference-dtype '{}' (expected float32 or bfloat16)", a.reference_dtype);
  if (a.reduce_dtype != "fp32" && a.reduce_dtype != "bf16")
    fail("plan: --reduce-dtype '{}' (expected fp32 or bf16)", a.reduce_dtype);
  if (a.optimizer != "adamw" && a.optimizer != "adafactor")
    fail("plan: --optimizer '{}' (expected adamw or adafactor)", a.optimizer);
  // Adafactor's statistics: the UNet's (model_spec); LoRA's adapters are matrices [rank, in] and [out, rank], whose
  // row + col statistics are rank + in and out + rank: trainable / rank, up to 2 x rank per adapter.
  int64_t adafactor_state = 0;
  if (a.optimizer == "adafactor") {
    if (trainable > 0) {
      DUALIGN_CHECK(a.lora_rank > 0, "plan: --optimizer adafactor with --lora-params needs --lora-rank");
      adafactor_state = trainable / a.lora_rank;
    } else {
      adafactor_state = model.adafactor_state;
    }
    if (a.adafactor_beta1) adafactor_state += trainable > 0 ? trainable : model.params;
  }
  std::vector<dist::PlanInput> rows;
  for (int stage : a.zero)
    for (const auto& p : a.precision) {
      if (p != "fp32" && p != "bf16" && p != "fp16") fail("plan: --precision '{}' (expected fp32, bf16 or fp16)", p);
      dist::PlanInput in;
      in.model = model;
      in.frozen_reference = traits.frozen_reference;
      in.bf16_reference = a.reference_dtype == "bfloat16";
      in.zero_stage = stage;
      in.optimizer = a.optimizer == "adamw" ? dist::Optimizer::adamw : dist::Optimizer::adafactor;
      in.adafactor_state = adafactor_state;
      in.precision = p == "fp32" ? dist::Precision::fp32 : p == "bf16" ? dist::Precision::bf16 : dist::Precision::fp16;
      in.bf16_reduce = a.reduce_dtype == "bf16";
      in.world_size = a.world;
      in.samples_per_gpu = a.micro_batch * traits.items_per_sample;  // a preference pair is two images
      in.nockpt_factor = a.nockpt_factor;
      in.workspace_gb = a.workspace_gb;
      in.trainable_params = trainable;
      in.reward_params = reward_params;
      in.reward_act_gb_per_sample = a.rewards.empty() ? 0.0 : a.reward_act_gb;
      dist::plan_memory(in);  // validates
      rows.push_back(in);
    }
  std::fputs(dist::format_plan_table(rows, a.gpu_gb).c_str(), stdout);
}

void add_plan_command(CLI::App& cli) {
  auto args = std::make_shared<PlanArgs>();
  auto* cmd = cli.add_subcommand("plan", "Per-GPU memory estimate: model x method x ZeRO stage x precision x world size");
  cmd->add_option("--model", args->model, "sd15, sdxl, or a parameter count (860M, 2.6B, 123456789)")->capture_default_str();
  cmd->add_option("--method", args->method, "a training method: " + methods::method_names())->capture_default_str();
  cmd->add_option("--world", args->world, "number of GPUs (ranks)")->capture_default_str();
  cmd->add_option("--zero", args->zero, "ZeRO stages to show (0 1 2)")->capture_default_str();
  cmd->add_option("--precision", args->precision, "train.precision values to show: fp32, bf16, fp16 (autocast, fp32 master weights)")->capture_default_str();
  cmd->add_option("--reference-dtype", args->reference_dtype, "method.reference_dtype of the frozen reference: float32 | bfloat16")->capture_default_str();
  cmd->add_option("--reduce-dtype", args->reduce_dtype, "dist.reduce_dtype: fp32 | bf16")->capture_default_str();
  cmd->add_option("--optimizer", args->optimizer, "train.optimizer: adamw | adafactor")->capture_default_str();
  cmd->add_flag("--adafactor-beta1", args->adafactor_beta1, "Adafactor keeps a first moment (train.adafactor.beta1 > 0)");
  cmd->add_option("--micro-batch", args->micro_batch, "dataset rows (samples, or pairs for pair methods) per GPU per micro-step")->capture_default_str();
  cmd->add_option("--gpu-gb", args->gpu_gb, "GPU memory to check against")->capture_default_str();
  cmd->add_option("--act-gb", args->act_gb, "measured bf16 activation GB per sample with checkpointing (overrides the anchor)");
  cmd->add_option("--nockpt-factor", args->nockpt_factor, "activations without / with checkpointing")->capture_default_str();
  cmd->add_option("--workspace-gb", args->workspace_gb, "CUDA context + NCCL + allocator slack")->capture_default_str();
  cmd->add_option("--lora-rank", args->lora_rank, "LoRA rank (0: full fine-tuning); adapter counts for sd15 / sdxl")
      ->capture_default_str();
  cmd->add_option("--lora-targets", args->lora_targets, "LoRA target projections")->capture_default_str();
  cmd->add_option("--lora-params", args->lora_params, "LoRA trainable parameters (models other than sd15 / sdxl)");
  cmd->add_option("--reward", args->rewards,
                  "rewards back-propagated through the SD VAE decoder: pickscore hpsv2 clip_score aesthetic or image "
                  "statistics (frozen towers counted once each)");
  cmd->add_option("--reward-act-gb", args->reward_act_gb,
                  "bf16 activation GB per sample of decode + reward towers with checkpointing (inferred default)")
      ->capture_default_str();
  cmd->callback([args] { run_plan(*args); });
}

const bool registered = register_command(add_plan_command);

}  // namespace
}  // namespace dualign::app
