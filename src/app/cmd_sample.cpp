// `dualign sample`: draw samples from a trained model (checkpoint file or run dir) and write them as a `samples`
// HDF5 file (format in src/eval/samples_io.h), optionally with a PNG grid (images) or scatter plot (2-D points).
// Unconditional, class-conditional (--class-id K | --classes all) or text-conditional (--prompts FILE: n samples
// per prompt; for SD-scale UNets the samples are latents).
#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include "app/commands.h"
#include "app/cli_support.h"
#include "eval/png.h"
#include "eval/samples_io.h"
#include "eval/sampling.h"
#include "util/error.h"
#include "util/log.h"

namespace dualign::app {
namespace {

struct SampleArgs {
  std::string model, out, png, sampler = "ddim", prompts, classes, device = "auto";
  int64_t n = 64, steps = 50, batch = 256, class_id = -1;
  double eta = 0;
  uint64_t seed = 0;
  bool no_ema = false;
  int threads = 0;
};

void run_sample(const SampleArgs& a) {
  if (launcher_rank() != 0) return;  // one process does the work and writes the file
  DUALIGN_CHECK(a.n >= 1 && a.batch >= 1, "-n and --batch must be >= 1 (got {} and {})", a.n, a.batch);
  if (a.threads > 0) at::set_num_threads(a.threads);
  const auto device = pick_device(a.device);
  auto trained = eval::load_trained_model(a.model, device, !a.no_ema);
  eval::SampleSpec spec;
  spec.sampler = sampler_config(a.sampler, a.steps, a.eta);
  spec.batch_size = a.batch;

  eval::SamplesFile file;
  data::Condition cond;
  int64_t total = a.n;
  if (!a.prompts.empty()) {
    DUALIGN_CHECK(a.class_id < 0 && a.classes.empty(), "--prompts cannot be combined with --class-id/--classes");
    auto prompts = eval::read_prompts(a.prompts);
    const int64_t p = prompts.text_embedding.size(0);
    total = p * a.n;
    file.prompt_index = torch::arange(p, torch::kInt64).repeat_interleave(a.n);  // prompt 0 × n, prompt 1 × n, ...
    cond.text = prompts.text_embedding.index_select(0, file.prompt_index);
    for (int64_t i = 0; i < total; ++i) file.prompts.push_back(prompts.prompt[size_t(file.prompt_index[i].item<int64_t>())]);
    file.text_attrs["prompts_file"] = a.prompts;
  } else {
    DUALIGN_CHECK(a.classes.empty() || a.classes == "all", "--classes: expected 'all', got '{}'", a.classes);
    const int64_t k = num_classes_of(trained.checkpoint);
    DUALIGN_CHECK(k > 0 || a.classes.empty(), "--classes all: model {} is not class-conditional", trained.checkpoint);
    cond = class_condition(a.n, a.class_id, k, trained.checkpoint);
    if (k > 0 && a.class_id < 0 && a.classes.empty())
      log::info("{} is class-conditional ({} classes): sampling all classes evenly (--class-id K for one)",
                trained.checkpoint, k);
    file.class_id = cond.class_id;
  }
  log::info("sampling {} from {} ({}, {} {} steps, seed {})", total, trained.checkpoint, trained.model->describe(),
            a.sampler, a.steps, a.seed);
  file.samples = eval::sample(*trained.model, *trained.schedule, spec, total, a.seed, cond);
  file.text_attrs["model"] = trained.checkpoint;
  file.text_attrs["sampler"] = a.sampler;
  file.text_attrs["weights"] = a.no_ema ? "model" : "ema_if_present";
  file.int_attrs["steps"] = a.steps;
  file.int_attrs["seed"] = static_cast<int64_t>(a.seed);
  file.float_attrs["eta"] = a.eta;
  eval::write_samples(a.out, file);
  log::info("wrote {} samples {} to {}", total, c10::str(file.samples.sizes()), a.out);

  if (!a.png.empty()) {
    if (file.samples.dim() == 4 && (file.samples.size(1) == 1 || file.samples.size(1) == 3)) {
      eval::write_image_grid(a.png, file.samples);
    } else if (file.samples.dim() == 2 && file.samples.size(1) == 2) {
      eval::write_scatter_png(a.png, file.samples);
    } else {
      fail("--png {}: samples {} are neither images [N, 1|3, H, W] nor 2-D points (latents are decoded by "
           "data_tools, not here)", a.png, c10::str(file.samples.sizes()));
    }
    log::info("wrote {}", a.png);
  }
}

void add_sample_command(CLI::App& cli) {
  auto a = std::make_shared<SampleArgs>();
  auto* cmd = cli.add_subcommand("sample", "Draw samples from a trained model into a samples HDF5 file");
  cmd->add_option("--model", a->model, "Checkpoint file, ckpt dir or run dir")->required();
  cmd->add_option("-n,--count", a->n, "Samples (per prompt with --prompts)")->capture_default_str();
  cmd->add_option("--out", a->out, "Output HDF5 file (format samples)")->required();
  cmd->add_option("--png", a->png, "Also write a PNG grid (images) or scatter plot (2-D points)");
  cmd->add_option("--seed", a->seed, "Seed of x_T and the sampler noise")->capture_default_str();
  cmd->add_option("--sampler", a->sampler, "ddim | ddpm")->capture_default_str();
  cmd->add_option("--steps", a->steps, "Sampler steps")->capture_default_str();
  cmd->add_option("--eta", a->eta, "DDIM eta (0 = deterministic)")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Rows per model call")->capture_default_str();
  cmd->add_option("--prompts", a->prompts, "Prompts HDF5 (text_embedding [P, L, D], prompt [P]): n samples per prompt");
  cmd->add_option("--class-id", a->class_id, "Class-conditional models: sample this class");
  cmd->add_option("--classes", a->classes, "Class-conditional models: 'all' = an even split over the classes");
  cmd->add_option("--device", a->device, "auto | cpu | cuda[:N]")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (0: OMP_NUM_THREADS or all cores)")->capture_default_str();
  cmd->add_flag("--no-ema", a->no_ema, "Use the raw weights even when the checkpoint has EMA weights");
  cmd->callback([a] { run_sample(*a); });
}

const bool registered = register_command(add_sample_command);

}  // namespace
}  // namespace dualign::app
