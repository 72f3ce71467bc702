// `dualign lora export`: the adapters of a LoRA training run (model.lora) as diffusers'
// pytorch_lora_weights.safetensors, for `pipe.load_lora_weights(OUT)` / `unet.load_lora_adapter`.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "app/commands.h"
#include "models/score_model.h"

namespace dualign::app {
namespace {

struct LoraExportArgs {
  std::string checkpoint, out;
  std::string weights = "ema";
};

void add_lora_command(CLI::App& cli) {
  auto* lora = cli.add_subcommand("lora", "LoRA tools: export");
  lora->require_subcommand(1);
  auto a = std::make_shared<LoraExportArgs>();
  auto* exp = lora->add_subcommand(
      "export", "Write a LoRA run's adapters as OUT/pytorch_lora_weights.safetensors (diffusers / peft names)");
  exp->add_option("checkpoint", a->checkpoint, "Checkpoint file, ckpt directory or run directory")->required();
  exp->add_option("--out", a->out, "Output directory")->required();
  exp->add_option("--weights", a->weights, "ema (when the checkpoint has them) or model")
      ->check(CLI::IsMember({"ema", "model"}))
      ->capture_default_str();
  exp->callback([a] {
    models::export_lora(a->checkpoint, a->out, a->weights == "ema");
    std::printf("wrote %s/pytorch_lora_weights.safetensors\n", a->out.c_str());
  });
}

const bool registered = register_command(add_lora_command);

}  // namespace
}  // namespace dualign::app
