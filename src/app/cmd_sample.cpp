// `dualign sample`: draw samples from a trained model (checkpoint file, ckpt dir or run dir) or a diffusers
// directory (a pipeline root with unet/ + scheduler/, e.g. Stable Diffusion 1.5) into a `samples` HDF5 file
// (format in src/eval/samples_io.h), optionally with PNGs (images) or a scatter plot (2-D points).
// Unconditional, class-conditional (--class-id K | --classes all) or text-conditional (--prompts FILE: n samples
// per prompt; for SD-scale UNets the samples are latents), with classifier-free guidance and any scheduler of
// diffusion/scheduler.h configured from a diffusers scheduler_config.json.
//
// Every rank works: rows are cut into batches of --batch and batch b goes to rank b % world; each row has its own
// seed (eval/sample_plan.h), so the file is the same at any world size and base and tuned models see the same
// x_T per (prompt, image). Ranks write parts; rank 0 merges them in row order and removes them.
#include <CLI/CLI.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "app/cli_support.h"
#include "app/commands.h"
#include "dist/comm.h"
#include "dist/runtime.h"
#include "eval/png.h"
#include "eval/sample_plan.h"
#include "eval/samples_io.h"
#include "eval/sampling.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace dualign::app {
namespace {

struct SampleArgs {
  std::string model, out, png, png_dir, prompts, negative_prompts, classes, device = "auto";
  eval::SchedulerChoice scheduler;
  int64_t n = 64, batch = 0, class_id = -1;
  double guidance = -1, guidance_rescale = 0;
  std::vector<double> time_ids;  // SDXL: the size conditioning of every sample (default: the pipeline's)
  uint64_t seed = 0;
  bool no_ema = false, no_progress = false;
  int threads = 0;
};

// What to sample: one entry per row, in the global row order. Conditions are tables (prompt embeddings, class
// ids) indexed per row, so that a 500-prompt run does not hold 2500 copies of 77x768 embeddings.
struct Rows {
  std::vector<int64_t> seed;
  torch::Tensor condition_index;  // prompt index / class id per row (int64 [N]); undefined when unconditional
  torch::Tensor image_index;      // int64 [N]
  data::Condition cond_table, uncond_table;  // uncond only when guided
  torch::Tensor cond_row, uncond_row;        // int64 [N]: each sample's row in the tables
  std::vector<std::string> prompts;
  std::string negative_source;

  static data::Condition pick(const data::Condition& table, const torch::Tensor& rows, const eval::RowRange& r) {
    if (!rows.defined()) return {};
    return table.select(rows.narrow(0, r.begin, r.size()));
  }
  data::Condition cond(const eval::RowRange& r) const { return pick(cond_table, cond_row, r); }
  data::Condition uncond(const eval::RowRange& r) const { return pick(uncond_table, uncond_row, r); }
};

// SDXL's size conditioning of every sample: --time-ids, or StableDiffusionXLPipeline's default (H, W, 0, 0, H, W)
// with H x W the sample's pixel size: the latent size times the VAE's downsampling 2^(len(block_out_channels) - 1),
// read from the vae/config.json beside the model's UNet or scheduler when there is one, else 8 (every SD VAE).
torch::Tensor sdxl_time_ids(const SampleArgs& a, const eval::SamplingModel& m) {
  if (!a.time_ids.empty()) {
    DUALIGN_CHECK(a.time_ids.size() == 6, "--time-ids: expected 6 numbers (original height, width, crop top, left, "
                  "target height, width), got {}", a.time_ids.size());
    return torch::tensor(a.time_ids, torch::kFloat32).view({1, 6});
  }
  namespace fs = std::filesystem;
  int64_t factor = 8;
  std::vector<fs::path> roots{m.source, fs::path(m.source).parent_path()};
  if (!m.scheduler_config.empty()) {
    fs::path s(m.scheduler_config);
    if (fs::is_regular_file(s)) s = s.parent_path();
    roots.push_back(s.parent_path());
  }
  for (const auto& root : roots) {
    const auto config = root / "vae" / "config.json";
    if (!fs::is_regular_file(config)) continue;
    const auto j = nlohmann::json::parse(std::ifstream(config), nullptr, /*allow_exceptions=*/false);
    DUALIGN_CHECK(j.is_object() && j.contains("block_out_channels") && j["block_out_channels"].is_array() &&
                      !j["block_out_channels"].empty(),
                  "{}: expected a diffusers VAE config with block_out_channels (for SDXL's time ids; or pass "
                  "--time-ids)", config.string());
    factor = int64_t(1) << (j["block_out_channels"].size() - 1);
    break;
  }
  const auto shape = m.model->sample_shape();  // [C, h, w]
  const double h = double(shape.at(1) * factor), w = double(shape.at(2) * factor);
  return torch::tensor({h, w, 0.0, 0.0, h, w}, torch::kFloat32).view({1, 6});
}

// --prompts: n images per prompt, prompt-major; the unconditional branch is the file's negative_text_embedding
// (or --negative-prompts): [1, L, D] for every prompt, or one row per prompt. SDXL prompt files add the pooled
// embeddings (and their negative), and every row gets the same time ids.
Rows prompt_rows(const SampleArgs& a, bool guided, const torch::Tensor& time_ids) {
  auto prompts = eval::read_prompts(a.prompts);
  const int64_t p = prompts.text_embedding.size(0);
  Rows r;
  r.condition_index = torch::arange(p, torch::kInt64).repeat_interleave(a.n);
  r.image_index = torch::arange(a.n, torch::kInt64).repeat({p});
  r.cond_table.text = prompts.text_embedding;
  const bool sdxl = prompts.pooled.defined();
  if (sdxl) {
    r.cond_table.text_pooled = prompts.pooled;
    r.cond_table.time_ids = time_ids.expand({p, 6}).contiguous();
  }
  r.cond_row = r.condition_index;
  for (int64_t i = 0; i < p * a.n; ++i) {
    r.prompts.push_back(prompts.prompt[size_t(i / a.n)]);
    r.seed.push_back(eval::sample_seed(a.seed, i / a.n, i % a.n));
  }
  if (!guided) return r;
  torch::Tensor negative = prompts.negative_text_embedding, negative_pooled = prompts.negative_pooled;
  r.negative_source = a.prompts + ":negative_text_embedding";
  if (!a.negative_prompts.empty()) {
    auto file = eval::read_prompts(a.negative_prompts);
    negative = file.text_embedding;
    negative_pooled = file.pooled;
    r.negative_source = a.negative_prompts;
  }
  DUALIGN_CHECK(negative.defined(),
                "guidance needs the unconditional prompt embedding, and {} has no negative_text_embedding: re-encode "
                "the prompts with data_tools/encode_prompts.py (it stores the empty prompt's embedding) or pass "
                "--negative-prompts FILE (guidance 1 samples without it)", a.prompts);
  DUALIGN_CHECK(negative.dim() == 3 && (negative.size(0) == 1 || negative.size(0) == p) &&
                    negative.size(1) == prompts.text_embedding.size(1) &&
                    negative.size(2) == prompts.text_embedding.size(2),
                "{}: negative prompt embeddings must be [1 or {}, {}, {}], got {}", r.negative_source, p,
                prompts.text_embedding.size(1), prompts.text_embedding.size(2), c10::str(negative.sizes()));
  r.uncond_table.text = negative;
  if (sdxl) {
    DUALIGN_CHECK(negative_pooled.defined() && negative_pooled.size(0) == negative.size(0) &&
                      negative_pooled.size(1) == prompts.pooled.size(1),
                  "{}: SDXL guidance needs the negative pooled embedding [{}, {}] beside the negative prompt "
                  "embedding: re-encode the prompts with data_tools/encode_prompts.py", r.negative_source,
                  negative.size(0), prompts.pooled.size(1));
    r.uncond_table.text_pooled = negative_pooled;
    r.uncond_table.time_ids = time_ids.expand({negative.size(0), 6}).contiguous();
  }
  r.uncond_row = negative.size(0) == 1 ? torch::zeros({p * a.n}, torch::kInt64) : r.condition_index;
  return r;
}

// Class-conditional: --class-id K (n images of K) or an even split of n over all classes (row i gets class
// ⌊i·K/n⌋); the unconditional branch is the null class. Unconditional models: n rows of condition 0.
Rows class_rows(const SampleArgs& a, int64_t num_classes, bool guided, const std::string& model) {
  DUALIGN_CHECK(a.classes.empty() || a.classes == "all", "--classes: expected 'all', got '{}'", a.classes);
  DUALIGN_CHECK(num_classes > 0 || (a.classes.empty() && a.class_id < 0),
                "--class-id/--classes: model {} is not class-conditional", model);
  Rows r;
  r.image_index = torch::empty({a.n}, torch::kInt64);
  if (num_classes > 0) {
    r.condition_index = class_condition(a.n, a.class_id, num_classes, model).class_id;
    r.cond_table.class_id = torch::arange(num_classes, torch::kInt64);
    r.cond_row = r.condition_index;
    if (guided) {
      r.uncond_table.class_id = torch::full({1}, num_classes, torch::kInt64);  // the null class
      r.uncond_row = torch::zeros({a.n}, torch::kInt64);
    }
  }
  std::map<int64_t, int64_t> seen;  // images so far of each class
  for (int64_t i = 0; i < a.n; ++i) {
    const int64_t c = r.condition_index.defined() ? r.condition_index[i].item<int64_t>() : 0;
    const int64_t j = seen[c]++;
    r.image_index[i] = j;
    r.seed.push_back(eval::sample_seed(a.seed, c, j));
  }
  return r;
}

eval::SamplesFile select_rows(const Rows& rows, const std::vector<eval::RowRange>& batches) {
  eval::SamplesFile f;
  std::vector<int64_t> idx;
  for (const auto& b : batches)
    for (int64_t i = b.begin; i < b.end; ++i) idx.push_back(i);
  auto index = torch::tensor(idx, torch::kInt64);
  f.image_index = rows.image_index.index_select(0, index);
  f.seed = torch::tensor(rows.seed, torch::kInt64).index_select(0, index);
  if (!rows.prompts.empty()) {
    f.prompt_index = rows.condition_index.index_select(0, index);
    for (auto i : idx) f.prompts.push_back(rows.prompts[size_t(i)]);
  } else if (rows.condition_index.defined()) {
    f.class_id = rows.condition_index.index_select(0, index);
  }
  return f;
}

void write_pngs(const SampleArgs& a, const eval::SamplesFile& file) {
  const auto& x = file.samples;
  const bool images = x.dim() == 4 && (x.size(1) == 1 || x.size(1) == 3);
  if (!a.png.empty()) {
    if (images) eval::write_image_grid(a.png, x);
    else if (x.dim() == 2 && x.size(1) == 2) eval::write_scatter_png(a.png, x);
    else fail("--png {}: samples {} are neither images [N, 1|3, H, W] nor 2-D points (latents are decoded by "
              "data_tools/evaluate_samples.py or pickscore.py, not here)", a.png, c10::str(x.sizes()));
    log::info("wrote {}", a.png);
  }
  if (!a.png_dir.empty()) {
    DUALIGN_CHECK(images, "--png-dir {}: samples {} are not images [N, 1|3, H, W] (latents are decoded by "
                  "data_tools/evaluate_samples.py or pickscore.py, not here)", a.png_dir, c10::str(x.sizes()));
    std::filesystem::create_directories(a.png_dir);
    for (int64_t i = 0; i < x.size(0); ++i) {
      const int64_t c = file.class_id.defined() ? file.class_id[i].item<int64_t>() : 0;
      const auto path = fmt::format("{}/{:06d}-class{}-image{}.png", a.png_dir, i, c, file.image_index[i].item<int64_t>());
      eval::write_png(path, eval::make_grid(x.narrow(0, i, 1), {.nrow = 1, .padding = 0}));
    }
    log::info("wrote {} PNGs to {}", x.size(0), a.png_dir);
  }
}

int run_sample(const SampleArgs& a, const dist::World& world) {
  DUALIGN_CHECK(a.n >= 1 && a.batch >= 0, "-n must be >= 1 and --batch >= 0 (got {} and {})", a.n, a.batch);
  DUALIGN_CHECK(a.guidance_rescale >= 0 && a.guidance_rescale <= 1, "--guidance-rescale must be in [0, 1], got {}",
                a.guidance_rescale);
  if (a.threads > 0) at::set_num_threads(a.threads);
  else if (!std::getenv("OMP_NUM_THREADS"))
    at::set_num_threads(int(std::max(1u, std::thread::hardware_concurrency() / unsigned(std::max(1, world.local_size)))));
  const auto device = a.device == "auto" && world.cuda
                          ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(world.device_index))
                          : pick_device(a.device);
  auto comm = dist::make_comm(world, torch::kCPU);  // a barrier before the merge; the samples travel as files

  auto m = eval::load_sampling_model(a.model, device, !a.no_ema);
  const auto sched = eval::resolve_scheduler(m, a.scheduler);
  diffusion::NoiseSchedule schedule(sched.schedule);
  const bool text = m.model->text_conditional();
  const int64_t classes = m.model->num_classes();
  // diffusers' StableDiffusionPipeline default for text; off for class labels (training drops labels to the null
  // class only with data.label_dropout > 0)
  const double guidance = a.guidance >= 0 ? a.guidance : text ? 7.5 : 1.0;
  const bool guided = guidance > 1.0;
  DUALIGN_CHECK(!guided || text || classes > 0, "--guidance {}: model {} has no condition to guide", guidance,
                m.source);
  DUALIGN_CHECK(!text || !a.prompts.empty(), "model {} is text-conditional: give --prompts FILE", m.source);
  DUALIGN_CHECK(text || a.prompts.empty(), "--prompts: model {} has no text conditioning", m.source);
  DUALIGN_CHECK(a.prompts.empty() || (a.class_id < 0 && a.classes.empty()),
                "--prompts cannot be combined with --class-id/--classes");
  const Rows rows = text ? prompt_rows(a, guided, sdxl_time_ids(a, m)) : class_rows(a, classes, guided, m.source);
  const auto total = int64_t(rows.seed.size());
  const int64_t batch = a.batch > 0 ? a.batch : text ? 8 : 256;

  eval::GuidedSampling spec;
  spec.sampler = sched.sampler;
  spec.guidance_scale = guidance;
  spec.guidance_rescale = a.guidance_rescale;
  const auto mine = eval::batches_of_rank(total, batch, world.rank, world.size);
  log::info("sampling {} rows from {} ({}) with {} {} steps, guidance {}{}; scheduler from {}; {} rank(s), batch {}",
            total, m.source, m.model->describe(), sched.sampler.kind, sched.sampler.num_inference_steps, guidance,
            a.guidance_rescale > 0 ? fmt::format(" (rescale {})", a.guidance_rescale) : "", sched.source, world.size,
            batch);

  eval::SamplesFile part = select_rows(rows, mine);
  int64_t mine_rows = 0;
  for (const auto& b : mine) mine_rows += b.size();
  Progress progress(world.size > 1 ? fmt::format("sample (rank 0 of {})", world.size) : "sample", mine_rows,
                    world.rank == 0 && !a.no_progress);
  std::vector<torch::Tensor> chunks;
  int64_t done = 0;
  for (const auto& b : mine) {
    std::vector<int64_t> seeds(rows.seed.begin() + b.begin, rows.seed.begin() + b.end);
    chunks.push_back(eval::sample_rows(*m.model, schedule, spec, seeds, rows.cond(b), rows.uncond(b)));
    progress.update(done += b.size());
  }
  progress.finish();
  std::vector<int64_t> shape{0};
  for (auto d : m.model->sample_shape()) shape.push_back(d);
  part.samples = chunks.empty() ? torch::empty(shape) : torch::cat(chunks);

  part.text_attrs = {{"model", m.source},
                     {"model_format", m.diffusers ? "diffusers" : "dualign checkpoint"},
                     {"sampler", sched.sampler.kind},
                     {"scheduler_source", sched.source},
                     {"scheduler_config", sched.json},
                     {"weights", m.diffusers ? "diffusers" : a.no_ema ? "model" : "ema_if_present"}};
  if (!a.prompts.empty()) part.text_attrs["prompts_file"] = a.prompts;
  if (!rows.negative_source.empty()) part.text_attrs["negative_prompt_embedding"] = rows.negative_source;
  part.int_attrs = {{"steps", sched.sampler.num_inference_steps}, {"seed", int64_t(a.seed)}, {"batch", batch}};
  part.float_attrs = {{"eta", sched.sampler.eta}, {"guidance_scale", guidance}, {"guidance_rescale", a.guidance_rescale}};

  if (world.size == 1) {
    eval::write_samples(a.out, part);
  } else {
    eval::write_samples(eval::part_path(a.out, world.rank, world.size), part);
    comm->barrier();  // every part is on disk
    if (world.rank != 0) return 0;
    std::vector<eval::SamplesFile> parts;
    for (int r = 0; r < world.size; ++r) parts.push_back(eval::read_samples(eval::part_path(a.out, r, world.size)));
    eval::write_samples(a.out, eval::merge_parts(parts, total, batch));
    for (int r = 0; r < world.size; ++r) std::filesystem::remove(eval::part_path(a.out, r, world.size));
  }
  if (world.rank != 0) return 0;
  log::info("wrote {} samples to {}", total, a.out);
  if (!a.png.empty() || !a.png_dir.empty()) write_pngs(a, eval::read_samples(a.out));
  return 0;
}

void add_sample_command(CLI::App& cli) {
  auto a = std::make_shared<SampleArgs>();
  auto* cmd = cli.add_subcommand("sample", "Draw samples from a trained model or a diffusers directory into a samples "
                                           "HDF5 file (every rank works: mpirun -np N dualign sample ...)");
  cmd->add_option("--model", a->model, "Checkpoint file, ckpt dir, run dir, or diffusers directory (unet/ + scheduler/)")
      ->required();
  cmd->add_option("-n,--count", a->n, "Samples (per prompt with --prompts)")->capture_default_str();
  cmd->add_option("--out", a->out, "Output HDF5 file (format samples)")->required();
  cmd->add_option("--png", a->png, "Also write a PNG grid (images) or scatter plot (2-D points)");
  cmd->add_option("--png-dir", a->png_dir, "Also write every image as its own PNG (image models)");
  cmd->add_option("--seed", a->seed, "Seed: image j of prompt/class c starts from derive_seed(seed, c, j)")
      ->capture_default_str();
  cmd->add_option("--sampler", a->scheduler.kind,
                  "ddim | ddpm | pndm | euler | euler_ancestral | dpmsolver++ (default: the scheduler config's "
                  "class, else ddim)");
  cmd->add_option("--scheduler-config", a->scheduler.scheduler_config,
                  "A diffusers scheduler_config.json (or a directory with one, or a pipeline root); default: the "
                  "model's own (diffusers directory, or the model.pretrained a checkpoint was tuned from)");
  cmd->add_option("--scheduler-set", a->scheduler.overrides,
                  "key=value with diffusers' key names, e.g. use_karras_sigmas=true timestep_spacing=trailing");
  cmd->add_option("--steps", a->scheduler.steps, "Inference steps")->capture_default_str();
  cmd->add_option("--eta", a->scheduler.eta, "DDIM eta (0 = deterministic)")->capture_default_str();
  cmd->add_option("--guidance", a->guidance,
                  "Classifier-free guidance scale (default: 7.5 for text-conditional models, 1 = off otherwise)");
  cmd->add_option("--guidance-rescale", a->guidance_rescale, "diffusers' guidance_rescale φ in [0, 1]")
      ->capture_default_str();
  cmd->add_option("--batch", a->batch, "Rows per model call (0: 8 for text-conditional models, else 256); the "
                                       "samples are the same for any number of ranks at a given batch")
      ->capture_default_str();
  cmd->add_option("--prompts", a->prompts, "Prompts HDF5 (text_embedding [P, L, D], prompt [P]): n samples per prompt");
  cmd->add_option("--time-ids", a->time_ids, "SDXL: the size conditioning H,W,top,left,H,W of every sample "
                  "(default: the sample's pixel size, as StableDiffusionXLPipeline)")
      ->delimiter(',')
      ->expected(6);
  cmd->add_option("--negative-prompts", a->negative_prompts,
                  "Prompts HDF5 whose text_embedding [1 or P, L, D] is the unconditional branch (default: the "
                  "prompts file's negative_text_embedding)");
  cmd->add_option("--class-id", a->class_id, "Class-conditional models: sample this class");
  cmd->add_option("--classes", a->classes, "Class-conditional models: 'all' = an even split over the classes");
  cmd->add_option("--device", a->device, "auto (each rank its GPU, else cpu) | cpu | cuda[:N]")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads per rank (0: OMP_NUM_THREADS, else cores / ranks per node)")
      ->capture_default_str();
  cmd->add_flag("--no-ema", a->no_ema, "Use the raw weights even when the checkpoint has EMA weights");
  cmd->add_flag("--no-progress", a->no_progress, "No progress line on rank 0");
  cmd->callback([a] {
    int argc = 0;
    char** argv = nullptr;
    const dist::World& world = dist::init(argc, argv);
    int rc = dist::run_guarded([&] { return run_sample(*a, world); });
    dist::finalize();
    set_exit_code(rc);
  });
}

const bool registered = register_command(add_sample_command);

}  // namespace
}  // namespace dualign::app
