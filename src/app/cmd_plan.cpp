// `dualign plan`: per-GPU memory estimate for a model x method x ZeRO stage x precision x world size, so
// users see what fits SD-1.5 and SDXL before they queue a job (formulas: dist/memory_plan.h). --lora-rank budgets
// LoRA (adapter counts from the UNet architecture, models/lora.h); --reward adds the frozen reward towers and the
// VAE decoder of reward back-propagation (their exact parameter counts) and their activations.
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/config_dir.h"
#include "app/plan_run.h"
#include "config/config.h"
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
  // A training config instead of --model/--method: positional overrides (experiment=...), --measure.
  std::vector<std::string> overrides;
  std::string config_dir;
  bool measure = false;
  int64_t latent_size = 0, text_tokens = 77;
  std::vector<int64_t> measure_batches{2, 4};
  bool measure_checkpointed_only = false;
  bool rows_given = false;  // --zero or --precision on the command line
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
      dist::PlanInput in;
      in.model = model;
      in.frozen_reference = traits.frozen_reference;
      in.bf16_reference = a.reference_dtype == "bfloat16";
      in.zero_stage = stage;
      in.optimizer = a.optimizer == "adamw" ? dist::Optimizer::adamw : dist::Optimizer::adafactor;
      in.adafactor_state = adafactor_state;
      in.precision = dist::parse_precision(p, "plan: --precision");
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

// The rows of one training config (plan_run.h): its ZeRO stage and precision unless --zero / --precision ask
// for others; with --measure, activations measured on the CPU (and Adafactor's exact state count).
void run_config_plan(const PlanArgs& a) {
  config::ComposeOptions o;
  o.config_dir = resolve_config_dir(a.config_dir);
  o.overrides = a.overrides;
  const auto cfg = config::Config::compose(o);
  auto plan = plan_run(cfg, a.world);
  auto& base = plan.input;
  base.workspace_gb = a.workspace_gb;
  base.nockpt_factor = a.nockpt_factor;
  if (a.act_gb > 0) base.model.act_gb_per_sample_ckpt = a.act_gb;
  if (a.measure) {
    const auto m = measure_activations(cfg, a.latent_size, a.text_tokens,
                                       {a.measure_batches.at(0), a.measure_batches.at(1)},
                                       a.measure_checkpointed_only);
    // The planner's figure is per bf16 sample (x2 in fp32 rows): the measurement is at the run's precision.
    const double scale = base.precision == dist::Precision::fp32 ? 2.0 : 1.0;
    base.model.act_gb_per_sample_ckpt = m.ckpt_gb / scale;
    base.model.activations_measured = true;
    base.model.nockpt_measured = m.full_gb > 0;
    if (m.full_gb > 0) base.nockpt_factor = m.full_gb / m.ckpt_gb;
    if (base.optimizer == dist::Optimizer::adafactor && base.trainable_params == 0)
      base.adafactor_state += m.adafactor_state - base.model.adafactor_state;  // keeps a first moment's Psi
    const auto size = static_cast<long long>(m.latent_size);
    std::printf("measured on the CPU (%s, latents %lldx%lld): activations %.4f GB per sample with gradient "
                "checkpointing, %s without\n", to_string(base.precision), size, size, m.ckpt_gb,
                m.full_gb > 0 ? fmt::format("{:.4f} GB", m.full_gb).c_str() : "not measured");
  }
  std::vector<dist::PlanInput> rows{base};
  if (a.rows_given) {  // other rows of the same run
    rows.clear();
    for (int stage : a.zero)
      for (const auto& p : a.precision) {
        auto in = base;
        in.zero_stage = stage;
        in.precision = dist::parse_precision(p, "plan: --precision");
        rows.push_back(in);
      }
  }
  for (const auto& in : rows) dist::plan_memory(in);  // validates
  std::fputs(dist::format_plan_table(rows, a.gpu_gb).c_str(), stdout);
  const auto row = dist::plan_memory(base);
  std::printf("this run: %.4g GB per GPU (total_%s: model.gradient_checkpointing %s)\n",
              plan.checkpointing ? row.total_ckpt_gb() : row.total_full_gb(), plan.checkpointing ? "ckpt" : "full",
              plan.checkpointing ? "true" : "false");
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
  cmd->add_option("overrides", args->overrides,
                  "a training config to plan instead of --model/--method: config overrides as `dualign train` takes "
                  "them (experiment=sdxl_dpo_pickapic ...); its ZeRO stage, precision, optimizer and micro-batch");
  cmd->add_option("--config-dir", args->config_dir, "config directory (default: ./configs or $DUALIGN_CONFIG_DIR)");
  cmd->add_flag("--measure", args->measure,
                "with a training config: measure its UNet's activations per sample on the CPU (forward + backward at "
                "two batch sizes, --measure-batches) instead of the anchors");
  cmd->add_option("--latent-size", args->latent_size, "with --measure: latent height and width (default: the UNet's "
                  "sample_size)");
  cmd->add_option("--text-tokens", args->text_tokens, "with --measure: text-embedding rows per sample")
      ->capture_default_str();
  cmd->add_option("--measure-batches", args->measure_batches,
                  "with --measure: the two batch sizes whose peak difference gives the activations (1 2 for models "
                  "whose batch of 4 does not fit the host)")
      ->expected(2)
      ->capture_default_str();
  cmd->add_flag("--measure-checkpointed-only", args->measure_checkpointed_only,
                "with --measure: only with gradient checkpointing (without it keeps --nockpt-factor)");
  cmd->callback([args, cmd] {
    const bool from_config = !args->overrides.empty();
    DUALIGN_CHECK(from_config || !args->measure, "plan: --measure needs a training config (e.g. dualign plan "
                                                  "experiment=sdxl_dpo_pickapic --measure)");
    if (!from_config) return run_plan(*args);
    for (const char* flag : {"--model", "--method", "--reference-dtype", "--reduce-dtype", "--optimizer",
                             "--adafactor-beta1", "--micro-batch", "--lora-rank", "--lora-params", "--reward"})
      DUALIGN_CHECK(cmd->count(flag) == 0, "plan: {} comes from the training config when one is given; set it "
                                           "there (an override) instead", flag);
    args->rows_given = cmd->count("--zero") > 0 || cmd->count("--precision") > 0;
    run_config_plan(*args);
  });
}

const bool registered = register_command(add_plan_command);

}  // namespace
}  // namespace dualign::app
