#include "dist/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "util/error.h"

namespace dualign::dist {

const char* to_string(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
  }
  return "?";
}

Precision parse_precision(const std::string& name, const std::string& key) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  if (name == "fp16") return Precision::fp16;
  fail("{} '{}' (expected fp32, bf16 or fp16)", key, name);
}

const char* to_string(Optimizer o) { return o == Optimizer::adamw ? "adamw" : "adafactor"; }

ModelSpec model_spec(const std::string& s) {
  // diffusers' counts; `dualign plan` takes them from the UNet configs (models::unet_parameter_count, which this
  // lower module cannot see) and its tests check the two agree.
  constexpr int64_t kSd15 = 859'520'964, kSdxl = 2'567'463'684;
  // Adafactor's row + col statistics over the diffusers UNets' parameter shapes (counted on the meta device).
  constexpr int64_t kSd15Adafactor = 457'589'700, kSdxlAdafactor = 244'330'500;
  if (s == "sd15") return {"sd15 (UNet, 512px)", kSd15, 3.0, kSd15Adafactor};
  if (s == "sdxl") return {"sdxl (UNet, 1024px)", kSdxl, 6.0, kSdxlAdafactor};
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str()) {
    std::string suffix(end);
    if (suffix == "K" || suffix == "k") v *= 1e3;
    else if (suffix == "M" || suffix == "m") v *= 1e6;
    else if (suffix == "B" || suffix == "b" || suffix == "G") v *= 1e9;
    else if (!suffix.empty()) v = -1;
  } else {
    v = -1;
  }
  if (v <= 0) fail("plan: model '{}' is neither sd15, sdxl nor a parameter count like 860M or 2.6e9", s);
  const auto n = static_cast<int64_t>(v);
  return {fmt::format("{:.3g}M params", v / 1e6), n, 3.0 * double(n) / double(kSd15),
          static_cast<int64_t>(double(n) * double(kSd15Adafactor) / double(kSd15))};
}

PlanRow plan_memory(const PlanInput& in) {
  DUALIGN_CHECK(in.zero_stage >= 0 && in.zero_stage <= 2, "plan: zero stage {} (supported: 0, 1, 2)", in.zero_stage);
  DUALIGN_CHECK(in.world_size >= 1, "plan: world size {} must be >= 1", in.world_size);
  DUALIGN_CHECK(in.trainable_params >= 0 && in.trainable_params <= in.model.params,
                "plan: {} trainable parameters for a {}-parameter model", in.trainable_params, in.model.params);
  const bool lora = in.trainable_params > 0;
  // Model states are those of the trained parameters: the whole model, or LoRA's adapters.
  const double psi = double(lora ? in.trainable_params : in.model.params) / 1e9;  // GB per byte-per-parameter
  const double n = in.world_size;
  const bool mixed = in.precision != Precision::fp32;
  const double wire = in.bf16_reduce ? 2 : 0;  // bf16 copy of the gradient handed to the collective
  // What train/optimizer.cpp, dist/grad_sync.cpp and dist/zero.cpp allocate. The model's parameters are fp32 in
  // every precision (autocast casts them per forward), so mixed precision saves activations, not model states.
  // The optimizer's own fp32 state: AdamW's m + v (8 Psi) or Adafactor's statistics (and first moment).
  DUALIGN_CHECK(in.optimizer == Optimizer::adamw || in.adafactor_state > 0,
                "plan: Adafactor needs the element count of its state (adafactor_state)");
  const double moments_gb = in.optimizer == Optimizer::adamw ? 8 * psi : 4 * double(in.adafactor_state) / 1e9;
  PlanRow r;
  r.casts_gb = mixed ? 2 * psi : 0;
  if (in.zero_stage == 0) {
    // DDP: fp32 weights, fp32 gradient buckets (.grad are views), the optimizer state (AdamW m + v: 16 Psi in all).
    r.params_gb = 4 * psi;
    r.grads_gb = (4 + wire) * psi;
    r.optimizer_gb = moments_gb;
  } else {
    // Full fp32 weights on every rank plus ZeRO's padded all-gather buffer; fp32 master + optimizer state sharded
    // (AdamW: 12 Psi/N). Adafactor assigns whole parameters to ranks: N > 1 adds the imbalance of that split (the
    // largest rank's slot pads the others'), small for many parameters and not counted here.
    r.params_gb = 8 * psi;
    r.optimizer_gb = in.optimizer == Optimizer::adamw ? 12 * psi / n : (4 * psi + moments_gb) / n;
    // A full flat gradient in the parameters' dtype (fp32; stage 1 accumulates in it, stage 2 reduce-scatters it
    // after every backward) and the fp32 gradient shard.
    r.grads_gb = (4 + wire) * psi + (4 + wire) * psi / n;
  }
  // LoRA: the frozen base is the reference (no copy) and is counted with the frozen networks, in fp32.
  if (in.frozen_reference && !lora) r.reference_gb = (in.bf16_reference ? 2 : 4) * psi;
  r.frozen_gb = 4 * (double(lora ? in.model.params : 0) + double(in.reward_params)) / 1e9;
  const double act_scale = mixed ? 1.0 : 2.0;
  r.act_ckpt_gb = (in.model.act_gb_per_sample_ckpt + in.reward_act_gb_per_sample) * act_scale * in.samples_per_gpu;
  r.act_full_gb = r.act_ckpt_gb * in.nockpt_factor;
  r.workspace_gb = in.workspace_gb;
  return r;
}

std::string format_plan_table(const std::vector<PlanInput>& inputs, double gpu_gb) {
  if (inputs.empty()) return "";
  const auto& first = inputs.front();
  // Small models (tests, toys) print in MB so their rows are not all zeros.
  double largest = 0;
  for (const auto& in : inputs) largest = std::max(largest, plan_memory(in).total_full_gb());
  const bool mb = largest < 1.0;
  const double k = mb ? 1e3 : 1.0;
  std::string out = fmt::format(
      "memory plan per GPU, {}: {} = {} params, {} GPU(s), {} sample(s) per GPU per micro-step, {}{}{}{}{}\n",
      mb ? "MB (1e6 B)" : "GB (1e9 B)", first.model.name, first.model.params, first.world_size, first.samples_per_gpu,
      first.optimizer == Optimizer::adamw ? "AdamW"
                                          : fmt::format("Adafactor ({} state elements)", first.adafactor_state),
      first.frozen_reference && first.trainable_params == 0
          ? (first.bf16_reference ? ", bf16 frozen reference" : ", fp32 frozen reference") : "",
      first.trainable_params > 0 ? fmt::format(", LoRA: {} trainable params (frozen fp32 base = reference)",
                                               first.trainable_params) : "",
      first.reward_params > 0 ? fmt::format(", reward networks: {} frozen params", first.reward_params) : "",
      first.bf16_reduce ? ", bf16 gradient reduction" : "");
  out += fmt::format("{:>4} {:>5} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>6} {:>10} {:>10}\n", "zero",
                     "prec", "params", "casts", "grads", "optim", "ref", "frozen", "act_ckpt", "act_full", "work",
                     "total_ckpt",
                     "total_full");
  auto fits = [&](double gb) { return gb <= gpu_gb ? " " : "!"; };
  for (const auto& in : inputs) {
    auto r = plan_memory(in);
    out += fmt::format("{:>4} {:>5} {:>7.2f} {:>6.2f} {:>7.2f} {:>7.2f} {:>7.1f} {:>7.1f} {:>9.1f} {:>9.1f} {:>6.1f} {:>9.1f}{} {:>9.1f}{}\n",
                       in.zero_stage, to_string(in.precision), k * r.params_gb, k * r.casts_gb, k * r.grads_gb,
                       k * r.optimizer_gb, k * r.reference_gb, k * r.frozen_gb, k * r.act_ckpt_gb, k * r.act_full_gb,
                       k * r.workspace_gb, k * r.total_ckpt_gb(), fits(r.total_ckpt_gb()), k * r.total_full_gb(),
                       fits(r.total_full_gb()));
  }
  out += fmt::format(
      "'!' = over {:.0f} GB. Model states as dualign train allocates them: fp32 weights, gradients and optimizer state "
      "in every precision (bf16/fp16 = autocast; 'casts' = the weights' bf16/fp16 copies a forward holds until "
      "its backward); stage 0: 16 Psi; stages 1-2: 4 Psi weights + 4 Psi all-gather buffer + 4 Psi flat gradient "
      "+ 4 Psi/N gradient shard + 12 Psi/N master, m, v (Adafactor: its state instead of m, v; src/dist/README.md). {}\n",
      gpu_gb,
      first.model.activations_measured
          ? fmt::format("Activations measured on the CPU: {:.4g} GB per bf16 sample with checkpointing, x{:.2f} "
                        "without{}, x2 in fp32.", first.model.act_gb_per_sample_ckpt, first.nockpt_factor,
                        first.model.nockpt_measured ? "" : " (assumed, not measured)")
          : fmt::format("Activations are inferred anchors (SD-1.5 512px ~3 GB, SDXL 1024px ~6 GB per bf16 sample "
                        "with checkpointing; x{:.0f} without; x2 in fp32): measure before trusting a tight fit "
                        "(dualign plan experiment=... --measure).", first.nockpt_factor));
  return out;
}

}  // namespace dualign::dist
