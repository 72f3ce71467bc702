// `dualign eval`: compare a policy with its reference. Both are sampled from the same x_T (and sampler noise),
// then, as the inputs allow: rewards (mean ± se per model, paired win rate), a held-out reward, KL(policy ‖
// reference) (PF-ODE likelihoods for low-dimensional data, the sampler path KL for images/latents; see
// eval/kl.h), class histograms from a classifier, implicit accuracy on held-out preference pairs. Writes one flat
// JSON object and prints a table. Runs on one process (other launcher ranks do nothing).
#include <CLI/CLI.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>

#include "app/commands.h"
#include "data/h5.h"
#include "data/h5_tensor.h"
#include "app/cli_support.h"
#include "eval/distances.h"
#include "eval/implicit.h"
#include "eval/kl.h"
#include "eval/metrics.h"
#include "eval/png.h"
#include "eval/sampling.h"
#include "config/yaml_file.h"
#include "rewards/classifier.h"
#include "rewards/reward.h"
#include "util/error.h"
#include "util/log.h"
#include "util/seed.h"

namespace dualign::app {
namespace {

struct EvalArgs {
  std::string model, reference, heldout_reward, pairs, classifier, frechet_data, out, png, kl = "auto", kl_sampler = "ddpm";
  std::string sampler = "ddim", classes, device = "auto";
  std::vector<std::string> rewards;
  int64_t n = 512, steps = 50, batch = 256, class_id = -1, kl_n = 256, kl_steps = 0, pairs_n = 1000, t_draws = 4;
  double eta = 0, beta = 1.0;
  uint64_t seed = 0;
  bool no_ema = false;
  int threads = 0;
};

using Json = nlohmann::ordered_json;

// Rewards of policy and reference samples under one reward file, plus the paired win rate.
void score_reward(Json& out, const std::string& file, const std::string& key, const std::string& suffix,
                  const torch::Device& device, const torch::Tensor& policy_x, const torch::Tensor& ref_x,
                  const data::Condition& cond) {
  auto cfg = config::config_from_yaml_file(file);
  std::unique_ptr<rewards::Reward> reward;
  try {
    reward = rewards::make_reward(cfg.root(), device);
  } catch (const Error& e) {
    fail("reward file {}: {}", file, e.what());
  }
  auto rp = reward->score(policy_x.to(device), cond.to(device)).cpu();
  auto rr = reward->score(ref_x.to(device), cond.to(device)).cpu();
  auto mp = eval::mean_se(rp), mr = eval::mean_se(rr);
  auto win = eval::win_rate(rp, rr);
  out[key + suffix + "/name"] = file;
  out[key + suffix + "/mean"] = mp.mean;
  out[key + suffix + "/se"] = mp.se;
  out[key + "_ref" + suffix + "/mean"] = mr.mean;
  out[key + "_ref" + suffix + "/se"] = mr.se;
  const std::string win_key = key == "reward" ? "win_rate" : key.substr(0, key.size() - 7) + "_win_rate";  // heldout_
  out[win_key + suffix] = win.mean;
  out[win_key + "_se" + suffix] = win.se;
}

void class_stats(Json& out, const std::string& prefix, const eval::ClassHistogram& h) {
  out[prefix + "/hist"] = h.share;
  out[prefix + "/coverage"] = h.coverage;
  out[prefix + "/entropy"] = h.entropy;
  out[prefix + "/tv_uniform"] = h.tv_uniform;
  out[prefix + "/mean_max_prob"] = h.mean_max_prob;
}

void check_same_schedule(const eval::TrainedModel& a, const eval::TrainedModel& b) {
  const auto& ca = a.schedule->config();
  const auto& cb = b.schedule->config();
  DUALIGN_CHECK(torch::equal(a.schedule->alphas_cumprod(), b.schedule->alphas_cumprod()) && ca.prediction == cb.prediction,
                "the path KL needs one noise schedule, but {} ({} {} steps, {}) and {} ({} {} steps, {}) differ",
                a.checkpoint, ca.kind, ca.num_train_timesteps, ca.prediction, b.checkpoint, cb.kind,
                cb.num_train_timesteps, cb.prediction);
}

void print_table(const Json& j) {
  std::string text = "\n";
  for (const auto& [key, value] : j.items()) {
    std::string v;
    if (value.is_number_float()) v = fmt::format("{:.5g}", value.get<double>());
    else if (value.is_string()) v = value.get<std::string>();
    else v = value.dump();
    if (v.size() > 90) v = v.substr(0, 87) + "...";
    text += fmt::format("  {:<28} {}\n", key, v);
  }
  std::fputs(text.c_str(), stdout);
}

void run_eval(const EvalArgs& a) {
  if (launcher_rank() != 0) return;
  DUALIGN_CHECK(a.n >= 1 && a.batch >= 1, "-n and --batch must be >= 1 (got {} and {})", a.n, a.batch);
  DUALIGN_CHECK(a.kl == "auto" || a.kl == "pfode" || a.kl == "path" || a.kl == "none",
                "--kl: expected auto, pfode, path or none, got '{}'", a.kl);
  // Input files first, so a typo fails before minutes of sampling.
  for (const auto& f : a.rewards) config::config_from_yaml_file(f);
  if (!a.heldout_reward.empty()) config::config_from_yaml_file(a.heldout_reward);
  if (!a.classifier.empty()) config::config_from_yaml_file(a.classifier);
  DUALIGN_CHECK(a.pairs.empty() || std::filesystem::is_regular_file(a.pairs), "--pairs {}: file does not exist", a.pairs);
  if (a.threads > 0) at::set_num_threads(a.threads);
  const auto device = pick_device(a.device);
  auto policy = eval::load_trained_model(a.model, device, !a.no_ema);
  auto ref = eval::load_trained_model(a.reference, device, !a.no_ema);
  const auto shape = policy.model->sample_shape();
  DUALIGN_CHECK(shape == ref.model->sample_shape(), "model {} draws samples shaped [{}] but reference {} draws [{}]",
                policy.checkpoint, fmt::join(shape, ", "), ref.checkpoint, fmt::join(ref.model->sample_shape(), ", "));
  policy.model->freeze();
  ref.model->freeze();

  // Conditions: class-conditional models sample one class or all classes evenly (the same rows for both).
  const int64_t k = num_classes_of(policy.checkpoint);
  DUALIGN_CHECK(k == num_classes_of(ref.checkpoint), "model {} has {} classes but reference {} has {}",
                policy.checkpoint, k, ref.checkpoint, num_classes_of(ref.checkpoint));
  DUALIGN_CHECK(a.classes.empty() || a.classes == "all", "--classes: expected 'all', got '{}'", a.classes);
  DUALIGN_CHECK(k > 0 || a.classes.empty(), "--classes all: model {} is not class-conditional", policy.checkpoint);
  const auto cond = class_condition(a.n, a.class_id, k, policy.checkpoint);

  Json out;
  out["model"] = policy.checkpoint;
  out["reference"] = ref.checkpoint;
  out["n"] = a.n;
  out["seed"] = a.seed;
  out["sampler"] = a.sampler;
  out["steps"] = a.steps;

  eval::SampleSpec spec;
  spec.sampler = sampler_config(a.sampler, a.steps, a.eta);
  spec.batch_size = a.batch;
  const uint64_t sample_seed = derive_seed(a.seed, "eval/sample");
  log::info("sampling {} from {} and from {} (same x_T)", a.n, policy.checkpoint, ref.checkpoint);
  auto xp = eval::sample(*policy.model, *policy.schedule, spec, a.n, sample_seed, cond);
  auto xr = eval::sample(*ref.model, *ref.schedule, spec, a.n, sample_seed, cond);

  for (size_t i = 0; i < a.rewards.size(); ++i) {
    // The first reward gets the plain keys (reward/mean, win_rate, ...); others add "/<file stem>".
    const std::string suffix = i == 0 ? "" : "/" + std::filesystem::path(a.rewards[i]).stem().string();
    score_reward(out, a.rewards[i], "reward", suffix, device, xp, xr, cond);
  }
  if (!a.heldout_reward.empty()) score_reward(out, a.heldout_reward, "heldout_reward", "", device, xp, xr, cond);

  // KL(policy ‖ reference).
  std::string kl = a.kl;
  const int64_t dim = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
  if (kl == "auto") kl = shape.size() == 1 && dim <= 8 ? "pfode" : "path";
  if (kl != "none") {
    const int64_t kl_n = std::min(a.kl_n, a.n);
    DUALIGN_CHECK(kl_n >= 2, "--kl-n must be >= 2");
    auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(a.seed, "eval/kl"));
    std::vector<int64_t> x_shape{kl_n};
    x_shape.insert(x_shape.end(), shape.begin(), shape.end());
    auto x_T = at::normal(0.0, 1.0, x_shape, gen).to(device);
    const auto kl_cond = class_condition(kl_n, a.class_id, k, policy.checkpoint);  // all classes again
    eval::KlEstimate est;
    int64_t kl_steps = a.kl_steps;
    if (kl == "pfode") {
      eval::PfOdeKlOptions o;
      o.steps = kl_steps = kl_steps > 0 ? kl_steps : 100;
      o.batch_size = a.batch;
      log::info("KL by PF-ODE likelihoods: {} samples, {} steps", kl_n, o.steps);
      est = eval::pfode_kl(eval::denoiser_of(*policy.model), *policy.schedule, eval::denoiser_of(*ref.model),
                           *ref.schedule, x_T, kl_cond, o);
    } else {
      check_same_schedule(policy, ref);
      kl_steps = kl_steps > 0 ? kl_steps : a.steps;
      auto sc = sampler_config(a.kl_sampler, kl_steps, a.kl_sampler == "ddim" ? 1.0 : 0.0);
      log::info("path KL along {} trajectories of the policy's {} sampler ({} steps)", kl_n, a.kl_sampler, kl_steps);
      torch::NoGradGuard no_grad;
      est = eval::path_kl(eval::denoiser_of(*policy.model), eval::denoiser_of(*ref.model), *policy.schedule, sc, x_T,
                          gen, kl_cond, a.batch);
      out["kl_sampler"] = a.kl_sampler == "ddim" ? "ddim_eta1" : "ddpm";
    }
    out["kl"] = est.kl.mean;
    out["kl_se"] = est.kl.se;
    out["kl_method"] = kl;
    out["kl_n"] = kl_n;
    out["kl_steps"] = kl_steps;
  } else {
    out["kl_method"] = "none";
  }

  if (!a.classifier.empty()) {
    auto section = config::config_from_yaml_file(a.classifier).root();
    std::string ckpt;
    try {
      ckpt = section.get<std::string>("checkpoint");
      section.finish({"kind", "classes", "output"});  // a classifier reward file works as it is
    } catch (const Error& e) {
      fail("classifier file {}: {}", a.classifier, e.what());
    }
    auto clf = rewards::load_classifier(ckpt, device);
    eval::ClassProbFn probs = [&](const torch::Tensor& x) {
      return torch::softmax(clf.model->forward(x.to(device, torch::kFloat32).clamp(-1, 1)), 1);
    };
    class_stats(out, "classes", eval::class_histogram(eval::class_probabilities(probs, xp, a.batch)));
    class_stats(out, "classes_ref", eval::class_histogram(eval::class_probabilities(probs, xr, a.batch)));
    out["classes/classifier"] = ckpt;
    if (!a.frechet_data.empty()) {
      // Fréchet distance of the classifier's logits: generated samples vs real images (e.g. the balanced test set).
      auto f = h5::File::open(a.frechet_data);
      DUALIGN_CHECK(f.exists("images"), "--frechet-data {}: no dataset 'images'", a.frechet_data);
      auto real = h5::read_tensor(f, "images").to(torch::kFloat32).div(127.5).sub(1.0);
      torch::NoGradGuard no_grad;
      auto logits = [&](const torch::Tensor& x) {
        std::vector<torch::Tensor> parts;
        for (int64_t i = 0; i < x.size(0); i += a.batch)
          parts.push_back(clf.model->forward(x.narrow(0, i, std::min(a.batch, x.size(0) - i)).to(device).clamp(-1, 1)).cpu());
        return torch::cat(parts);
      };
      auto real_logits = logits(real);
      out["classes/frechet"] = eval::frechet_distance(logits(xp), real_logits);
      out["classes_ref/frechet"] = eval::frechet_distance(logits(xr), real_logits);
      out["classes/frechet_data"] = a.frechet_data;
      out["classes/frechet_data_n"] = real.size(0);
    }
  }

  if (!a.pairs.empty()) {
    check_same_schedule(policy, ref);
    auto pairs = eval::read_preference_pairs(a.pairs, a.pairs_n);
    DUALIGN_CHECK(pairs.winner.sizes().slice(1).vec() == shape, "--pairs {}: samples shaped [{}] but the model draws [{}]",
                  a.pairs, fmt::join(pairs.winner.sizes().slice(1), ", "), fmt::join(shape, ", "));
    auto acc = eval::implicit_accuracy(eval::denoiser_of(*policy.model), eval::denoiser_of(*ref.model),
                                       *policy.schedule, pairs, a.t_draws, derive_seed(a.seed, "eval/implicit"), a.beta,
                                       a.batch);
    out["implicit_acc"] = acc.accuracy.mean;
    out["implicit_acc_se"] = acc.accuracy.se;
    out["implicit_logit_mean"] = acc.logit.mean;
    out["implicit_n"] = acc.accuracy.n;
  }

  if (!a.png.empty()) {
    if (xp.dim() == 4 && (xp.size(1) == 1 || xp.size(1) == 3)) eval::write_image_grid(a.png, xp);
    else if (xp.dim() == 2 && xp.size(1) == 2) eval::write_scatter_png(a.png, xp, xr);  // policy dark, reference red
    else log::warn("--png: samples {} are not images or 2-D points; no PNG written", c10::str(xp.sizes()));
  }

  const std::string tmp = a.out + ".tmp";
  {
    std::ofstream f(tmp);
    DUALIGN_CHECK(f.good(), "--out {}: cannot write", a.out);
    f << out.dump(2) << "\n";
    DUALIGN_CHECK(f.good(), "--out {}: write failed", a.out);
  }
  std::filesystem::rename(tmp, a.out);
  print_table(out);
  log::info("wrote {}", a.out);
}

void add_eval_command(CLI::App& cli) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = cli.add_subcommand("eval", "Compare a policy with its reference: rewards, win rate, KL, classes, implicit accuracy");
  cmd->add_option("--model", a->model, "Policy: checkpoint file, ckpt dir or run dir")->required();
  cmd->add_option("--reference", a->reference, "Reference: checkpoint file, ckpt dir or run dir")->required();
  cmd->add_option("--reward", a->rewards, "Reward YAML ({kind: gmm_target, target: [2.5, 0]}); repeatable");
  cmd->add_option("--heldout-reward", a->heldout_reward, "Held-out reward YAML (not used in training)");
  cmd->add_option("--pairs", a->pairs, "Held-out preference_pairs HDF5 for the implicit accuracy");
  cmd->add_option("--pairs-n", a->pairs_n, "Pairs used (first rows)")->capture_default_str();
  cmd->add_option("--t-draws", a->t_draws, "(t, eps) draws per pair for the implicit accuracy")->capture_default_str();
  cmd->add_option("--beta", a->beta, "beta of the reported mean DPO logit")->capture_default_str();
  cmd->add_option("--classifier", a->classifier, "YAML with `checkpoint:` of an image classifier (a classifier reward file works)");
  cmd->add_option("--frechet-data", a->frechet_data,
                  "With --classifier: images HDF5 (uint8 `images`, e.g. the test set); adds the Frechet distance of the "
                  "classifier's logits between generated samples and these images");
  cmd->add_option("-n,--count", a->n, "Samples per model")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed (x_T shared by both models)")->capture_default_str();
  cmd->add_option("--out", a->out, "Output JSON (one flat object)")->required();
  cmd->add_option("--png", a->png, "PNG grid of policy samples (images) or scatter of both (2-D points)");
  cmd->add_option("--sampler", a->sampler, "ddim | ddpm (samples for rewards and classes)")->capture_default_str();
  cmd->add_option("--steps", a->steps, "Sampler steps")->capture_default_str();
  cmd->add_option("--eta", a->eta, "DDIM eta")->capture_default_str();
  cmd->add_option("--kl", a->kl, "auto | pfode | path | none (auto: pfode for points with D <= 8, else path)")
      ->capture_default_str();
  cmd->add_option("--kl-n", a->kl_n, "Samples for the KL estimate (at most n)")->capture_default_str();
  cmd->add_option("--kl-steps", a->kl_steps, "PF-ODE steps (default 100) or path-KL sampler steps (default --steps)");
  cmd->add_option("--kl-sampler", a->kl_sampler, "Path KL sampler: ddpm | ddim (eta = 1)")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Rows per model call")->capture_default_str();
  cmd->add_option("--class-id", a->class_id, "Class-conditional models: evaluate this class");
  cmd->add_option("--classes", a->classes, "Class-conditional models: 'all' = an even split (the default)");
  cmd->add_option("--device", a->device, "auto | cpu | cuda[:N]")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (0: OMP_NUM_THREADS or all cores)")->capture_default_str();
  cmd->add_flag("--no-ema", a->no_ema, "Use the raw weights even when checkpoints have EMA weights");
  cmd->callback([a] { run_eval(*a); });
}

const bool registered = register_command(add_eval_command);

}  // namespace
}  // namespace dualign::app
