// Per-GPU memory estimate before queueing a job (`dualign plan`): the model states `dualign train` allocates by
// ZeRO stage, precision and gradient-reduction dtype (src/dist/README.md compares them with ZeRO's accounting), the
// frozen reference model of DPO-style methods, activations from measured anchors with and without gradient
// checkpointing, and a fixed CUDA/NCCL workspace. 1 GB = 1e9 B.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dualign::dist {

struct ModelSpec {
  std::string name;
  int64_t params = 0;
  // bf16 activations + workspace per training sample with gradient checkpointing, GB (inferred anchors:
  // SD-1.5 at 512^2 ~3 GB, SDXL at 1024^2 ~6 GB; a bare count scales the SD-1.5 figure by size).
  double act_gb_per_sample_ckpt = 0;
  // fp32 elements of transformers-style Adafactor's second-moment statistics over all parameters (dist/adafactor.h:
  // row + col statistics of the last two dims of each >= 2-D tensor, the whole of each 1-D one), counted from the
  // diffusers UNets' shapes; a bare count assumes SD-1.5's proportion (53 %: its 1x1 convolutions keep twice their
  // size, its 3x3 ones two thirds).
  int64_t adafactor_state = 0;
  bool activations_measured = false;  // act_gb_per_sample_ckpt was measured
  bool nockpt_measured = false;       // and so was the factor without checkpointing
};
// "sd15", "sdxl", or a parameter count ("123456789", "1.2e9", "860M", "2.6B").
ModelSpec model_spec(const std::string& name_or_count);

// train.precision. bf16 / fp16 = autocast: the parameters stay fp32 (the master weights), and so do the gradients
// and the optimizer state; each forward holds a bf16/fp16 cast of the weights until its backward.
enum class Precision { fp32, bf16, fp16 };

// "fp32" | "bf16" | "fp16"; anything else is an error naming `key` (e.g. "plan --precision").
Precision parse_precision(const std::string& name, const std::string& key);

// train.optimizer.
enum class Optimizer { adamw, adafactor };

struct PlanInput {
  ModelSpec model;
  bool frozen_reference = false;  // dpo/dmpo/kto: a frozen copy of the model (method.reference_dtype)
  bool bf16_reference = false;    // method.reference_dtype=bfloat16 (else float32)
  // LoRA: the adapters' parameter count (0 = full fine-tuning). Optimizer, gradients and ZeRO shards cover only
  // them; the base stays frozen in fp32 (as dualign holds it) and doubles as the reference (no copy).
  int64_t trainable_params = 0;
  // Frozen networks of reward back-propagation (reward towers, the VAE decoder): parameters, held in fp32.
  int64_t reward_params = 0;
  double reward_act_gb_per_sample = 0;  // their activations per sample, gradient checkpointing on (bf16)
  int zero_stage = 0;             // 0 (DDP), 1 (optimizer states sharded), 2 (+ gradients sharded)
  Optimizer optimizer = Optimizer::adamw;
  // Adafactor: fp32 elements of its state over the trained parameters (dist::adafactor_state_numel summed; with
  // train.adafactor.beta1 > 0 the first moment's Psi elements too).
  int64_t adafactor_state = 0;
  Precision precision = Precision::bf16;
  bool bf16_reduce = false;       // dist.reduce_dtype=bf16: a bf16 copy of the gradient for the collective
  int world_size = 1;
  int samples_per_gpu = 1;          // per micro-step (a DPO pair is 2 samples)
  double nockpt_factor = 4.0;       // activations without checkpointing / with (inferred)
  double workspace_gb = 2.0;        // CUDA context, NCCL buffers, allocator slack
};

struct PlanRow {
  double params_gb = 0;   // fp32 weights (+ ZeRO's all-gather buffer)
  double casts_gb = 0;    // autocast's bf16/fp16 copies of the weights, from a forward to its backward
  double grads_gb = 0, optimizer_gb = 0, reference_gb = 0;
  double frozen_gb = 0;  // LoRA's frozen base + reward networks
  double act_ckpt_gb = 0, act_full_gb = 0, workspace_gb = 0;
  double model_states_gb() const { return params_gb + casts_gb + grads_gb + optimizer_gb; }
  double total_ckpt_gb() const { return model_states_gb() + reference_gb + frozen_gb + act_ckpt_gb + workspace_gb; }
  double total_full_gb() const { return model_states_gb() + reference_gb + frozen_gb + act_full_gb + workspace_gb; }
};

PlanRow plan_memory(const PlanInput& in);
std::string format_plan_table(const std::vector<PlanInput>& inputs, double gpu_gb);
const char* to_string(Precision p);
const char* to_string(Optimizer o);

}  // namespace dualign::dist
