// `dualign export`: a trained UNet (checkpoint file, ckpt dir or run dir) as a diffusers directory:
//   OUT/unet/config.json + diffusion_pytorch_model.safetensors (fp32, fp16 or bf16)
//   with --base SD_DIR: every other pipeline component of SD_DIR (model_index.json, vae/, text_encoder/,
//     tokenizer/, scheduler/, ...) symlinked (default) or copied (--copy), so that
//     StableDiffusionPipeline.from_pretrained(OUT) loads the tuned model
//   without --base: OUT/scheduler/scheduler_config.json (the scheduler `dualign sample --model RUN` would use), so
//     `dualign sample --model OUT` samples like the checkpoint
//   OUT/dualign_export.json: where the weights came from.
// The directory is assembled under a temporary name and renamed, so a failed export leaves no half directory.
#include <CLI/CLI.hpp>

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "ckpt/checkpoint.h"
#include "eval/sampling.h"
#include "models/diffusers_io.h"
#include "util/error.h"
#include "util/log.h"

namespace dualign::app {
namespace {
namespace fs = std::filesystem;

struct ExportArgs {
  std::string model, out, base, dtype = "fp32";
  bool copy = false, no_ema = false;
};

torch::Dtype dtype_of(const std::string& name) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "fp16" || name == "float16") return torch::kFloat16;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  fail("--dtype: expected fp32, fp16 or bf16, got '{}'", name);
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path);
  out << text;
  DUALIGN_CHECK(out.good(), "cannot write {}", path.string());
}

void run_export(const ExportArgs& a) {
  const auto dtype = dtype_of(a.dtype);
  DUALIGN_CHECK(!fs::exists(a.out) || fs::is_empty(a.out), "--out {}: exists and is not empty (export into a new "
                "directory)", a.out);
  auto m = eval::load_sampling_model(a.model, torch::kCPU, !a.no_ema);
  DUALIGN_CHECK(!m.diffusers, "--model {}: already a diffusers directory (export takes a dualign checkpoint or run)",
                a.model);
  auto* unet = dynamic_cast<models::UNet2DConditionModelImpl*>(&m.model->module());
  DUALIGN_CHECK(unet, "--model {}: the model is {}, not a UNet: only UNets have a diffusers layout", m.source,
                m.model->describe());

  const fs::path out = fs::absolute(a.out).lexically_normal();
  const fs::path tmp = out.string() + fmt::format(".tmp-{}", ::getpid());
  fs::remove_all(tmp);
  models::save_diffusers_unet(*unet, (tmp / "unet").string(), dtype);
  if (!a.base.empty()) {
    models::assemble_pipeline(a.base, tmp.string(), a.copy);
  } else {
    // the scheduler `dualign sample --model RUN` would use: the model.pretrained one, else the checkpoint's schedule
    const auto sched = eval::resolve_scheduler(m, {});
    write_text(tmp / "scheduler" / "scheduler_config.json", sched.json);
  }
  ckpt::CheckpointReader reader(m.source);
  nlohmann::json info{{"checkpoint", m.source},
                      {"weights", a.no_ema ? "model" : reader.has_group("ema") ? "ema" : "model"},
                      {"dtype", a.dtype},
                      {"base", a.base.empty() ? nlohmann::json(nullptr) : nlohmann::json(fs::absolute(a.base).string())},
                      {"components", a.base.empty() ? "unet + scheduler" : a.copy ? "copied from base" : "symlinked to base"}};
  if (reader.has_attr("step")) info["step"] = reader.attr_int("step");
  write_text(tmp / "dualign_export.json", info.dump(2) + "\n");
  if (fs::exists(out)) fs::remove(out);  // an empty directory
  fs::rename(tmp, out);
  log::info("exported {} ({} weights, {}) to {}{}", m.source, info["weights"].get<std::string>(), a.dtype,
            out.string(), a.base.empty() ? "" : fmt::format(" with the other components of {}", a.base));
}

void add_export_command(CLI::App& cli) {
  auto a = std::make_shared<ExportArgs>();
  auto* cmd = cli.add_subcommand("export", "Write a trained UNet as a diffusers directory (unet/ [+ the rest of a "
                                           "pipeline with --base]) that StableDiffusionPipeline.from_pretrained loads");
  cmd->add_option("--model", a->model, "Checkpoint file, ckpt dir or run dir")->required();
  cmd->add_option("--out", a->out, "New output directory")->required();
  cmd->add_option("--base", a->base, "A diffusers pipeline (e.g. stable-diffusion-v1-5) whose other components "
                                     "(vae, text_encoder, tokenizer, scheduler, model_index.json, ...) complete OUT");
  cmd->add_flag("--copy", a->copy, "Copy the --base components instead of symlinking them");
  cmd->add_option("--dtype", a->dtype, "fp32 | fp16 | bf16")->capture_default_str();
  cmd->add_flag("--no-ema", a->no_ema, "Export the raw weights even when the checkpoint has EMA weights");
  cmd->callback([a] { run_export(*a); });
}

const bool registered = register_command(add_export_command);

}  // namespace
}  // namespace dualign::app
