// `dualign plan`: per-GPU memory estimate for a model x method x ZeRO stage x precision x world size, so
// users see what fits SD-1.5 and SDXL before they queue a job (formulas: dist/memory_plan.h).
#include <cstdio>
#include <string>
#include <vector>

#include "app/commands.h"
#include "dist/memory_plan.h"
#include "methods/registry.h"
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
  int micro_batch = 1;
  double gpu_gb = 80;
  double act_gb = -1;
  double nockpt_factor = 4;
  double workspace_gb = 2;
};

void run_plan(const PlanArgs& a) {
  auto model = dist::model_spec(a.model);
  if (a.act_gb > 0) model.act_gb_per_sample_ckpt = a.act_gb;
  const auto& traits = methods::find_method(a.method, "plan --method").traits;
  if (a.reference_dtype != "float32" && a.reference_dtype != "bfloat16")
    fail("plan: --reference-dtype '{}' (expected float32 or bfloat16)", a.reference_dtype);
  if (a.reduce_dtype != "fp32" && a.reduce_dtype != "bf16")
    fail("plan: --reduce-dtype '{}' (expected fp32 or bf16)", a.reduce_dtype);
  std::vector<dist::PlanInput> rows;
  for (int stage : a.zero)
    for (const auto& p : a.precision) {
      if (p != "fp32" && p != "bf16" && p != "fp16") fail("plan: --precision '{}' (expected fp32, bf16 or fp16)", p);
      dist::PlanInput in;
      in.model = model;
      in.frozen_reference = traits.frozen_reference;
      in.bf16_reference = a.reference_dtype == "bfloat16";
      in.zero_stage = stage;
      in.precision = p == "fp32" ? dist::Precision::fp32 : p == "bf16" ? dist::Precision::bf16 : dist::Precision::fp16;
      in.bf16_reduce = a.reduce_dtype == "bf16";
      in.world_size = a.world;
      in.samples_per_gpu = a.micro_batch * traits.items_per_sample;  // a preference pair is two images
      in.nockpt_factor = a.nockpt_factor;
      in.workspace_gb = a.workspace_gb;
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
  cmd->add_option("--micro-batch", args->micro_batch, "dataset rows (samples, or pairs for pair methods) per GPU per micro-step")->capture_default_str();
  cmd->add_option("--gpu-gb", args->gpu_gb, "GPU memory to check against")->capture_default_str();
  cmd->add_option("--act-gb", args->act_gb, "measured bf16 activation GB per sample with checkpointing (overrides the anchor)");
  cmd->add_option("--nockpt-factor", args->nockpt_factor, "activations without / with checkpointing")->capture_default_str();
  cmd->add_option("--workspace-gb", args->workspace_gb, "CUDA context + NCCL + allocator slack")->capture_default_str();
  cmd->callback([args] { run_plan(*args); });
}

const bool registered = register_command(add_plan_command);

}  // namespace
}  // namespace dualign::app
