#include "app/plan_run.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <optional>

#include "config/config.h"
#include "dist/adafactor.h"
#include "dist/device_memory.h"
#include "methods/registry.h"
#include "models/autocast.h"
#include "models/lora.h"
#include "models/score_model.h"
#include "models/unet.h"
#include "models/unet_config.h"
#include "train/settings.h"
#include "util/error.h"

namespace dualign::app {
namespace {

// A forward + backward of `unet` on `batch` random samples under autocast; returns the allocator's peak above
// what was live before. The gradients exist beforehand, as the trainer's gradient buckets do, so the peak is
// where the planner puts it: at the start of the backward, every activation alive.
int64_t step_peak(models::UNet2DConditionModel& unet, int64_t batch, int64_t latent_size, int64_t text_tokens,
                  c10::ScalarType autocast) {
  const auto& c = unet->config();
  const torch::Device cpu(torch::kCPU);
  const int64_t before = dist::current_device_memory(cpu);
  dist::reset_peak_device_memory(cpu);
  {
    auto x = torch::randn({batch, c.in_channels, latent_size, latent_size});
    auto t = torch::full({batch}, 500, torch::kLong);
    torch::Tensor text, labels, pooled, time_ids;
    if (unet->has_cross_attention()) text = torch::randn({batch, text_tokens, c.cross_dim(0)});
    if (c.class_conditional()) labels = torch::zeros({batch}, torch::kLong);
    if (c.text_time_conditional()) {
      constexpr int64_t kTimeIds = 6;  // SDXL: original size, crop top-left, target size
      pooled = torch::randn({batch, c.projection_class_embeddings_input_dim.value() - kTimeIds * c.addition_time_embed_dim});
      time_ids = torch::full({batch, kTimeIds}, 64.0);
    }
    torch::Tensor out;
    {
      models::AutocastScope scope(cpu, autocast);
      out = unet->forward(x, t, text, labels, pooled, time_ids);
    }
    out.to(torch::kFloat32).square().mean().backward();
  }
  return dist::peak_device_memory(cpu) - before;
}

}  // namespace

RunPlan plan_run(const config::Config& cfg, int world) {
  const auto s = train::read_settings(cfg);
  const auto model = cfg.section("model");
  const auto method = cfg.section("method");
  const auto& traits = methods::find_method(method.get<std::string>("name"), method.path("name")).traits;
  RunPlan plan;
  auto& in = plan.input;
  DUALIGN_CHECK(model.get<std::string>("kind") == "unet", "plan: config key '{}' is '{}'; plans are for UNets",
                model.path("kind"), model.get<std::string>("kind"));
  const auto unet = models::unet_config(model);
  // SD-1.5's and SDXL's UNets keep their named anchors and exact Adafactor counts; others scale SD-1.5's.
  const int64_t count = models::unet_parameter_count(unet);
  in.model = dist::model_spec(std::to_string(count));
  for (const char* known : {"sd15", "sdxl"})
    if (dist::model_spec(known).params == count) in.model = dist::model_spec(known);
  const auto pretrained = model.get<std::string>("pretrained", "");
  in.model.name = fmt::format("{} ({})", pretrained.empty() ? "the config's UNet" : "the UNet of " + pretrained,
                              in.model.name);
  const auto lora = model.has("lora") ? std::optional(models::read_lora_config(model.section("lora"))) : std::nullopt;
  if (lora) in.trainable_params = models::lora_parameter_count(unet, *lora);
  plan.checkpointing = model.get<bool>("gradient_checkpointing", false);
  in.frozen_reference = traits.frozen_reference;
  in.bf16_reference = method.get<std::string>("reference_dtype", "float32") == "bfloat16";
  in.zero_stage = s.zero_stage;
  in.precision = dist::parse_precision(s.precision, "train.precision");
  in.bf16_reduce = s.reduce_dtype == "bf16";
  in.world_size = world;
  in.samples_per_gpu = static_cast<int>(s.global_micro_batch(world) / world) * traits.items_per_sample;
  in.optimizer = s.optimizer == "adafactor" ? dist::Optimizer::adafactor : dist::Optimizer::adamw;
  if (in.optimizer == dist::Optimizer::adafactor) {
    // Estimated from the count (model_spec); --measure replaces it with the exact figure.
    in.adafactor_state = lora ? in.trainable_params / lora->rank : in.model.adafactor_state;
    if (s.adafactor.beta1 > 0) in.adafactor_state += lora ? in.trainable_params : in.model.params;
  }
  return plan;
}

MeasuredActivations measure_activations(const config::Config& cfg, int64_t latent_size, int64_t text_tokens,
                                        std::pair<int64_t, int64_t> batches, bool checkpointed_only) {
  const auto [small, large] = batches;
  DUALIGN_CHECK(small >= 1 && large > small, "plan: --measure-batches {} {} (expected 1 <= a < b)", small, large);
  const auto s = train::read_settings(cfg);
  dist::install_cpu_memory_meter();
  torch::manual_seed(0);
  models::UNet2DConditionModel unet(models::unet_config(cfg.section("model")));  // random weights: shapes suffice
  if (latent_size <= 0) latent_size = unet->config().sample_size;
  unet->train();
  const auto autocast = models::autocast_dtype(s.precision, "train.precision");
  for (auto& p : unet->parameters()) p.mutable_grad() = torch::zeros_like(p);
  MeasuredActivations m;
  for (bool checkpointing : {true, false}) {
    if (!checkpointing && checkpointed_only) break;
    unet->set_gradient_checkpointing(checkpointing);
    step_peak(unet, small, latent_size, text_tokens, autocast);  // warm-up: first-use allocations
    const int64_t low = step_peak(unet, small, latent_size, text_tokens, autocast);
    const int64_t high = step_peak(unet, large, latent_size, text_tokens, autocast);
    (checkpointing ? m.ckpt_gb : m.full_gb) = static_cast<double>(high - low) / static_cast<double>(large - small) / 1e9;
  }
  for (const auto& p : unet->parameters()) m.adafactor_state += dist::adafactor_state_numel(p.sizes(), false);
  m.latent_size = latent_size;
  return m;
}

}  // namespace dualign::app
