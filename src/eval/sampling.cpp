#include "eval/sampling.h"

#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "ckpt/checkpoint.h"
#include "config/config.h"
#include "diffusion/guidance.h"
#include "diffusion/schedule_config.h"
#include "diffusion/scheduler.h"
#include "diffusion/scheduler_json.h"
#include "util/error.h"
#include "util/log.h"

namespace dualign::eval {

TrainedModel load_trained_model(const std::string& checkpoint, const torch::Device& device, bool prefer_ema) {
  TrainedModel out;
  out.model = models::load_score_model(checkpoint, device, prefer_ema);
  out.checkpoint = models::resolve_checkpoint(checkpoint);
  ckpt::CheckpointReader reader(out.checkpoint);
  config::Composed composed;
  composed.config = composed.resolved = YAML::Load(reader.text("config_yaml"));
  config::Config cfg(std::move(composed));
  out.schedule = std::make_unique<diffusion::NoiseSchedule>(diffusion::read_schedule(cfg.section("diffusion")));
  return out;
}

torch::Tensor sample(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule, const SampleSpec& spec,
                     int64_t n, uint64_t seed, const data::Condition& cond) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.module().is_training();
  model.module().eval();
  diffusion::DiscreteSampler sampler(schedule, spec.sampler);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<int64_t> shape{n};
  for (auto d : model.sample_shape()) shape.push_back(d);
  const auto device = model.parameters().front().device();
  auto x_T = at::normal(0.0, 1.0, shape, gen);  // all of x_T first: independent of the batch size
  std::vector<torch::Tensor> chunks;
  for (int64_t start = 0; start < n; start += spec.batch_size) {
    const int64_t len = std::min(spec.batch_size, n - start);
    const auto c = cond.slice(start, len).to(device);
    diffusion::SampleOptions opts;
    opts.generator = gen;
    opts.guidance = spec.guidance;
    auto score = [&](const torch::Tensor& x, const torch::Tensor& t) {
      return model.forward(x, t.to(torch::kInt64), c);
    };
    chunks.push_back(sampler.sample(score, x_T.narrow(0, start, len).to(device), opts).cpu().to(torch::kFloat32));
  }
  model.module().train(was_training);
  return torch::cat(chunks, 0);
}

namespace {
namespace fs = std::filesystem;

bool is_diffusers_dir(const std::string& path) {
  const fs::path p(path);
  return fs::is_directory(p) && (fs::exists(p / "unet" / "config.json") ||
                                 (fs::exists(p / "config.json") && fs::exists(p / "diffusion_pytorch_model.safetensors")));
}

// The scheduler_config.json of the diffusers model a checkpoint was fine-tuned from (model.pretrained: a pipeline
// root, or its unet/ next to scheduler/), if that directory exists on this machine.
std::string pretrained_scheduler_config(const std::string& checkpoint) {
  ckpt::CheckpointReader reader(checkpoint);
  auto model = YAML::Load(reader.text("config_yaml"))["model"];
  if (!model || !model["pretrained"] || model["pretrained"].IsNull()) return "";
  const fs::path pretrained(model["pretrained"].as<std::string>());
  if (pretrained.empty() || !fs::is_directory(pretrained)) return "";
  for (const auto& dir : {pretrained, pretrained.parent_path()}) {
    const auto file = dir / "scheduler" / "scheduler_config.json";
    if (fs::is_regular_file(file)) return file.string();
  }
  return "";
}

}  // namespace

SamplingModel load_sampling_model(const std::string& path, const torch::Device& device, bool prefer_ema) {
  SamplingModel out;
  if (is_diffusers_dir(path)) {
    out.model = models::load_diffusers_score_model(path, device);
    out.source = fs::absolute(path).lexically_normal().string();
    out.diffusers = true;
    out.scheduler_config = diffusion::find_scheduler_config(path);
    return out;
  }
  auto trained = load_trained_model(path, device, prefer_ema);
  out.model = trained.model;
  out.source = trained.checkpoint;
  out.trained_schedule = trained.schedule->config();
  out.scheduler_config = pretrained_scheduler_config(trained.checkpoint);
  return out;
}

ResolvedScheduler resolve_scheduler(const SamplingModel& model, const SchedulerChoice& choice) {
  DUALIGN_CHECK(choice.steps >= 1, "--steps must be >= 1, got {}", choice.steps);
  DUALIGN_CHECK(choice.eta >= 0, "--eta must be >= 0, got {}", choice.eta);
  const std::string file = !choice.scheduler_config.empty() ? choice.scheduler_config : model.scheduler_config;
  ResolvedScheduler r;
  diffusion::SchedulerSpec spec;
  if (!file.empty()) {
    spec = diffusion::read_scheduler_config(file, choice.kind, choice.overrides);
    r.source = diffusion::find_scheduler_config(file);
    if (!spec.ignored_keys.empty())
      log::warn("{}: ignoring keys no supported scheduler has: {}", r.source, fmt::join(spec.ignored_keys, ", "));
    if (model.trained_schedule)
      DUALIGN_CHECK(diffusion::same_schedule(*model.trained_schedule, spec.schedule),
                    "{} was trained with the noise schedule {}, but the scheduler config {} has {}", model.source,
                    diffusion::describe(*model.trained_schedule), r.source, diffusion::describe(spec.schedule));
  } else {
    DUALIGN_CHECK(model.trained_schedule, "{} has no scheduler/scheduler_config.json: pass --scheduler-config",
                  model.source);
    const std::string kind = choice.kind.empty() ? "ddim" : choice.kind;
    // DDIM and DDPM keep dualign's own defaults (no x0 clipping, ᾱ_prev = 1 at the end); the other kinds exist
    // only in diffusers' form.
    diffusion::SamplerConfig base;
    if (kind == "ddim" || kind == "ddpm") base.kind = kind;
    else base = diffusion::diffusers_defaults(kind).sampler;
    spec = diffusion::parse_scheduler_config(diffusion::scheduler_config_json(*model.trained_schedule, base),
                                             "the checkpoint's diffusion section", kind, choice.overrides);
    r.source = fmt::format("{} (diffusion section) with {} defaults", model.source,
                           kind == "ddim" || kind == "ddpm" ? "dualign's" : "diffusers'");
  }
  r.schedule = spec.schedule;
  r.sampler = spec.sampler;
  r.sampler.num_inference_steps = choice.steps;
  r.sampler.eta = choice.eta;
  DUALIGN_CHECK(choice.eta == 0 || r.sampler.kind == "ddim", "--eta applies to the ddim sampler only (sampler is {})",
                r.sampler.kind);
  r.json = diffusion::scheduler_config_json(r.schedule, r.sampler);
  return r;
}

torch::Tensor sample_rows(models::ScoreModel& model, const diffusion::NoiseSchedule& schedule,
                          const GuidedSampling& spec, const std::vector<int64_t>& seeds, const data::Condition& cond,
                          const data::Condition& uncond) {
  torch::NoGradGuard no_grad;
  const auto rows = int64_t(seeds.size());
  for (const auto* t : {&cond.class_id, &cond.text, &cond.text_pooled, &cond.time_ids, &uncond.class_id, &uncond.text,
                        &uncond.text_pooled, &uncond.time_ids})
    DUALIGN_CHECK(!t->defined() || t->size(0) == rows, "sample_rows: {} seeds but a condition of {} rows", rows,
                  t->size(0));
  const bool guided = spec.guidance_scale > 1.0;
  DUALIGN_CHECK(!guided || uncond.class_id.defined() || uncond.text.defined(),
                "guidance scale {} needs the unconditional branch (null class or negative prompt embeddings)",
                spec.guidance_scale);
  const bool was_training = model.module().is_training();
  model.module().eval();
  const auto device = model.parameters().front().device();
  std::vector<at::Generator> generators;
  std::vector<int64_t> shape{1};
  for (auto d : model.sample_shape()) shape.push_back(d);
  std::vector<torch::Tensor> x_T;
  for (auto seed : seeds) {
    generators.push_back(at::make_generator<at::CPUGeneratorImpl>(uint64_t(seed)));
    x_T.push_back(at::normal(0.0, 1.0, shape, generators.back()));
  }
  const auto c = cond.to(device);
  // SDXL: the unconditional rows carry the negative pooled embedding and the same time ids (as the pipeline)
  const auto pair = guided ? data::Condition::concat(uncond.to(device), c) : data::Condition{};
  diffusion::ScoreFn denoiser = [&](const torch::Tensor& x, const torch::Tensor& t) { return model.forward(x, t, c); };
  if (guided) {
    // [uncond; cond] in one call, as StableDiffusionPipeline batches them
    auto on_pair = [&](const torch::Tensor& x, const torch::Tensor& t) { return model.forward(x, t, pair); };
    denoiser = diffusion::classifier_free_guidance_batched(on_pair, spec.guidance_scale, spec.guidance_rescale);
  }
  auto scheduler = diffusion::make_scheduler(schedule, spec.sampler);
  auto out = diffusion::sample_with_scheduler(*scheduler, denoiser, torch::cat(x_T).to(device),
                                              diffusion::per_row_noise(generators));
  model.module().train(was_training);
  return out.cpu().to(torch::kFloat32);
}

TrainedModel load_model_with_schedule(const std::string& path, const torch::Device& device) {
  if (!is_diffusers_dir(path)) return load_trained_model(path, device);
  auto m = load_sampling_model(path, device);
  TrainedModel out;
  out.schedule = std::make_unique<diffusion::NoiseSchedule>(resolve_scheduler(m, {}).schedule);
  out.checkpoint = m.source;
  out.model = m.model;
  return out;
}

}  // namespace dualign::eval
