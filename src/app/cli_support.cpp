#include "app/cli_support.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "ckpt/checkpoint.h"
#include "util/error.h"

namespace dualign::app {

int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}

torch::Device pick_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  try {
    torch::Device d(name);
    DUALIGN_CHECK(!d.is_cuda() || torch::cuda::is_available(), "--device {}: CUDA is not available here", name);
    return d;
  } catch (const c10::Error&) {
    fail("--device: '{}' is not a device (expected auto, cpu, cuda or cuda:N)", name);
  }
}

diffusion::SamplerConfig sampler_config(const std::string& kind, int64_t steps, double eta) {
  DUALIGN_CHECK(kind == "ddim" || kind == "ddpm", "--sampler: expected ddim or ddpm, got '{}'", kind);
  DUALIGN_CHECK(steps >= 1, "--steps must be >= 1, got {}", steps);
  DUALIGN_CHECK(eta >= 0, "--eta must be >= 0, got {}", eta);
  DUALIGN_CHECK(kind == "ddim" || eta == 0, "--eta applies to the ddim sampler only");
  diffusion::SamplerConfig c;
  c.kind = kind;
  c.num_inference_steps = steps;
  c.eta = eta;
  return c;
}

int64_t num_classes_of(const std::string& checkpoint) {
  ckpt::CheckpointReader reader(checkpoint);
  auto model = YAML::Load(reader.text("config_yaml"))["model"];
  DUALIGN_CHECK(model && model.IsMap(), "checkpoint {}: its config has no model section", checkpoint);
  const auto kind = model["kind"] ? model["kind"].as<std::string>() : "";
  if (kind == "mlp") return model["num_classes"] ? model["num_classes"].as<int64_t>() : 0;
  if (model["num_class_embeds"] && !model["num_class_embeds"].IsNull())
    return std::max<int64_t>(model["num_class_embeds"].as<int64_t>() - 1, 0);
  return 0;
}

data::Condition class_condition(int64_t n, int64_t class_id, int64_t num_classes, const std::string& model) {
  data::Condition c;
  if (num_classes == 0) {
    DUALIGN_CHECK(class_id < 0, "--class-id {}: model {} is not class-conditional", class_id, model);
    return c;
  }
  if (class_id >= 0) {
    DUALIGN_CHECK(class_id < num_classes, "--class-id {}: model {} has {} classes", class_id, model, num_classes);
    c.class_id = torch::full({n}, class_id, torch::kInt64);
  } else {
    c.class_id = torch::div(torch::arange(n, torch::kInt64) * num_classes, std::max<int64_t>(n, 1), "floor");
  }
  return c;
}

}  // namespace dualign::app
